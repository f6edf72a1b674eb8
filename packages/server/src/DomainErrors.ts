/**
 * Domain and cluster failures as API errors, keeping their stable codes: a missing session, run
 * or document is 404 (the same for another tenant's id, which simply does not exist in the
 * caller's tenant), a closed session 409, a quota 429, storage and cluster trouble 503.
 */
import * as ApiErrors from "@tessera/domain/ApiErrors"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"

interface Tagged {
  readonly _tag: string
  readonly message?: string
}

const codeOf = (error: Tagged, fallback: string): string =>
  Predicate.hasProperty(error, "code") && typeof error.code === "string" ? error.code : fallback

const isApiError = Schema.is(ApiErrors.ApiError)

/** The API error for a failure; an API error is itself. */
export const toApiError = (error: Tagged): ApiErrors.ApiError => {
  if (isApiError(error)) return error
  const message = error.message ?? error._tag
  switch (error._tag) {
    case "SessionNotFound":
    case "RunNotFound":
    case "DocumentNotFound":
    case "TenantNotFound":
      return new ApiErrors.NotFound({ code: codeOf(error, "not_found"), message })
    case "SessionClosed":
    case "TenantAlreadyExists":
      return new ApiErrors.Conflict({ code: codeOf(error, "conflict"), message })
    case "InvalidId":
      return new ApiErrors.BadRequest({ code: codeOf(error, "invalid_id"), message })
    case "QuotaExceeded": {
      const retry = Predicate.hasProperty(error, "retryAfterMs") && typeof error.retryAfterMs === "number" ? error.retryAfterMs : 1000
      const quota = Predicate.hasProperty(error, "quota") ? error.quota : null
      return new ApiErrors.TooManyRequests({ code: "quota_exceeded", message, details: { quota }, retry_after_ms: retry })
    }
    case "DimensionMismatch":
      return new ApiErrors.Conflict({ code: codeOf(error, "dimension_mismatch"), message })
    default:
      return new ApiErrors.Unavailable({ code: codeOf(error, "unavailable"), message })
  }
}
