/**
 * The errors of the HTTP edge. Every one has the same body, `{ code, message, details,
 * request_id }`: `code` is stable (clients branch on it), `message` says what was wrong and where,
 * `details` carries structured context (the offending field, the retry delay) and `request_id`
 * matches the `X-Request-Id` response header. One class per HTTP status.
 */
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as Schema from "effect/Schema"

const fields = {
  code: Schema.String,
  message: Schema.String,
  details: Schema.optionalWith(Schema.Unknown, { default: () => null }),
  request_id: Schema.optionalWith(Schema.String, { default: () => "" })
}

export class BadRequest extends Schema.TaggedError<BadRequest>()("BadRequest", fields, HttpApiSchema.annotations({ status: 400 })) {}

export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", fields, HttpApiSchema.annotations({ status: 401 })) {}

export class Forbidden extends Schema.TaggedError<Forbidden>()("Forbidden", fields, HttpApiSchema.annotations({ status: 403 })) {}

export class NotFound extends Schema.TaggedError<NotFound>()("NotFound", fields, HttpApiSchema.annotations({ status: 404 })) {}

export class Conflict extends Schema.TaggedError<Conflict>()("Conflict", fields, HttpApiSchema.annotations({ status: 409 })) {}

export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()("PayloadTooLarge", fields, HttpApiSchema.annotations({ status: 413 })) {}

/** Over a rate limit or quota; the response carries `Retry-After` and `RateLimit-*` headers. */
export class TooManyRequests extends Schema.TaggedError<TooManyRequests>()("TooManyRequests", {
  ...fields,
  retry_after_ms: Schema.Int
}, HttpApiSchema.annotations({ status: 429 })) {}

export class Internal extends Schema.TaggedError<Internal>()("Internal", fields, HttpApiSchema.annotations({ status: 500 })) {}

export class Unavailable extends Schema.TaggedError<Unavailable>()("Unavailable", fields, HttpApiSchema.annotations({ status: 503 })) {}

export const ApiError = Schema.Union(
  BadRequest,
  Unauthorized,
  Forbidden,
  NotFound,
  Conflict,
  PayloadTooLarge,
  TooManyRequests,
  Internal,
  Unavailable
)
export type ApiError = typeof ApiError.Type

/** The HTTP status of each error. */
export const statusOf = (error: ApiError): number => {
  switch (error._tag) {
    case "BadRequest":
      return 400
    case "Unauthorized":
      return 401
    case "Forbidden":
      return 403
    case "NotFound":
      return 404
    case "Conflict":
      return 409
    case "PayloadTooLarge":
      return 413
    case "TooManyRequests":
      return 429
    case "Internal":
      return 500
    case "Unavailable":
      return 503
  }
}
