/**
 * The outermost layer of every HTTP request (API routes, /metrics, health, the WebSocket upgrade):
 *
 * - a request id (the caller's `X-Request-Id` when it is a safe token, a fresh one otherwise),
 *   echoed in the `X-Request-Id` header and in every error body;
 * - the body limit (`HTTP_MAX_BODY_BYTES`, default 1 MiB): a larger body is refused with 413
 *   before it is read further; a JSON body that does not parse is refused with 400 and the
 *   offset of the fault, one with a NUL character in a string with 400 and the field;
 * - `Idempotency-Key` on POSTs (see Idempotency), except the operator API's;
 * - one error shape, `{ code, message, details, request_id }`, for every failure: a schema
 *   violation names the field, an unknown route is 404, a defect is 500 with no internals;
 * - `RateLimit-*` headers, `Retry-After` on 429, `WWW-Authenticate` on 401;
 * - request count and latency metrics.
 */
import * as HttpApiError from "@effect/platform/HttpApiError"
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as ApiErrors from "@tessera/domain/ApiErrors"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { randomBytes } from "node:crypto"
import { Authenticator, credentialOf } from "./Auth.js"
import { Idempotency, type Request as IdempotentRequest, validKey } from "./Idempotency.js"
import { httpDuration, httpRequests } from "./Metrics.js"
import { nulPath, syntaxErrorOffset } from "./internal/json.js"
import * as RequestContext from "./RequestContext.js"

export const maxBodyBytesConfig = Config.integer("HTTP_MAX_BODY_BYTES").pipe(Config.withDefault(1024 * 1024))

const requestIdOf = (header: string | undefined) =>
  header !== undefined && /^[A-Za-z0-9._:-]{1,100}$/.test(header) ? header : `req_${randomBytes(12).toString("base64url")}`

const isApiError = Schema.is(ApiErrors.ApiError)

const decodeIssues = (error: HttpApiError.HttpApiDecodeError) =>
  error.issues.map((issue) => ({ field: issue.path.map(String).join("."), message: issue.message }))

/** Any failure as one of the API errors; a defect is logged here and answered without internals. */
export const toApiError = (cause: Cause.Cause<unknown>): Effect.Effect<ApiErrors.ApiError> => {
  const error = Cause.squash(cause)
  if (isApiError(error)) return Effect.succeed(error)
  if (error instanceof HttpApiError.HttpApiDecodeError) {
    const issues = decodeIssues(error)
    const first = issues[0]
    const where = first === undefined ? "" : first.field === "" ? "" : ` at ${first.field}`
    return Effect.succeed(
      new ApiErrors.BadRequest({
        code: "invalid_request",
        message: first === undefined ? "the request is invalid" : `invalid request${where}: ${first.message}`,
        details: { issues }
      })
    )
  }
  if (HttpServerError.isServerError(error) && error._tag === "RouteNotFound") {
    return Effect.succeed(new ApiErrors.NotFound({ code: "route_not_found", message: "no such route" }))
  }
  return Effect.as(
    Effect.logError("request failed unexpectedly", cause),
    new ApiErrors.Internal({ code: "internal_error", message: "the server failed to handle the request" })
  )
}

/** The response for an API error, in the one error shape. */
export const errorResponse = (error: ApiErrors.ApiError, requestId: string): HttpServerResponse.HttpServerResponse => {
  const body = { code: error.code, message: error.message, details: error.details ?? null, request_id: requestId }
  let response = HttpServerResponse.unsafeJson(body, { status: ApiErrors.statusOf(error) })
  if (error._tag === "TooManyRequests") {
    response = HttpServerResponse.setHeader(response, "retry-after", String(Math.max(1, Math.ceil(error.retry_after_ms / 1000))))
  }
  if (error._tag === "Unauthorized") {
    response = HttpServerResponse.setHeader(response, "www-authenticate", `Bearer realm="tessera", error="invalid_token"`)
  }
  if (error._tag === "PayloadTooLarge") response = HttpServerResponse.setHeader(response, "connection", "close")
  return response
}

const hasBody = (method: string) => method === "POST" || method === "PUT" || method === "PATCH"

const decoder = new TextDecoder()

export const make = Effect.gen(function*() {
  const maxBodyBytes = yield* maxBodyBytesConfig
  const auth = yield* Authenticator
  const idempotency = yield* Idempotency

  /** Reads (and caches on the request) a body within the limit; fails with 413 or 400. */
  const checkBody = (
    request: HttpServerRequest.HttpServerRequest,
    onBodyTenant: (named: { readonly field: string; readonly value: unknown }) => void
  ) =>
    Effect.gen(function*() {
      const declared = Number(request.headers["content-length"] ?? "0")
      const tooLarge = () =>
        new ApiErrors.PayloadTooLarge({
          code: "payload_too_large",
          message: `the request body is over the limit of ${maxBodyBytes} bytes`,
          details: { limit_bytes: maxBodyBytes }
        })
      if (Number.isFinite(declared) && declared > maxBodyBytes) return yield* tooLarge()
      const text: string = yield* request.text.pipe(
        HttpIncomingMessage.withMaxBodySize(Option.some(maxBodyBytes)),
        Effect.catchAll((error): Effect.Effect<never, ApiErrors.PayloadTooLarge | ApiErrors.BadRequest> =>
          error.cause instanceof Error && error.cause.message === "maxBytes exceeded"
            ? Effect.fail(tooLarge())
            : Effect.fail(new ApiErrors.BadRequest({ code: "unreadable_body", message: "the request body could not be read" }))
        )
      )
      const contentType = request.headers["content-type"] ?? ""
      if (text !== "" && contentType.includes("json")) {
        let parsed: unknown
        try {
          parsed = JSON.parse(text)
        } catch (error) {
          const position = syntaxErrorOffset(text) ?? 0
          return yield* new ApiErrors.BadRequest({
            code: "malformed_json",
            message: `the body is not valid JSON (at offset ${position}): ${error instanceof Error ? error.message : String(error)}`,
            details: { position }
          })
        }
        if (typeof parsed === "object" && parsed !== null) {
          for (const field of ["tenant_id", "tenantId"]) {
            const value: unknown = Reflect.get(parsed, field)
            if (value !== undefined) onBodyTenant({ field, value })
          }
        }
        const nul = nulPath(parsed)
        if (nul !== undefined) {
          return yield* new ApiErrors.BadRequest({
            code: "invalid_character",
            message: `${nul === "" ? "the body" : nul} contains a NUL character (U+0000), which is not accepted`,
            details: { field: nul }
          })
        }
      }
      return text
    })

  /** The handler's response kept for the key when it is a plain body and not a server error. */
  const remember = (claim: IdempotentRequest, response: HttpServerResponse.HttpServerResponse) =>
    response.status < 500 && response.body._tag === "Uint8Array"
      ? idempotency.complete(claim, response.status, decoder.decode(response.body.body), response.body.contentType)
      : idempotency.release(claim)

  const withIdempotency = (
    app: HttpApp.Default,
    request: HttpServerRequest.HttpServerRequest,
    body: string
  ): Effect.Effect<HttpServerResponse.HttpServerResponse, ApiErrors.ApiError, HttpServerRequest.HttpServerRequest> => {
    const key = request.headers["idempotency-key"]
    // The operator API has no tenant to keep responses under; a retried tenant creation is 409 instead.
    if (request.method !== "POST" || key === undefined || request.url.startsWith("/v1/operator/")) return app
    return Effect.gen(function*() {
      if (!validKey(key)) {
        return yield* new ApiErrors.BadRequest({
          code: "invalid_idempotency_key",
          message: "Idempotency-Key must be 1-200 printable ASCII characters",
          details: { header: "Idempotency-Key" }
        })
      }
      const principal = yield* auth.authenticate(credentialOf(request.headers))
      const context = yield* RequestContext.get
      if (Option.isSome(context)) context.value.principal = principal
      const claim = { tenantId: principal.tenantId, key, method: request.method, path: request.url, body }
      const begun = yield* idempotency.begin(claim)
      if (begun._tag === "Replay") {
        return HttpServerResponse.text(begun.body, { status: begun.status, contentType: begun.contentType }).pipe(
          HttpServerResponse.setHeader("idempotent-replayed", "true")
        )
      }
      return yield* app.pipe(
        Effect.onExit((exit) =>
          exit._tag === "Success" ? remember(claim, exit.value) : idempotency.release(claim)
        )
      )
    })
  }

  return (app: HttpApp.Default): HttpApp.Default =>
    Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const context = RequestContext.make(requestIdOf(request.headers["x-request-id"]))
      const started = yield* Clock.currentTimeMillis
      const handled = Effect.gen(function*() {
        const body = hasBody(request.method)
          ? yield* checkBody(request, (named) => {
            context.bodyTenant ??= named
          })
          : ""
        return yield* withIdempotency(app, request, body)
      })
      const response = yield* handled.pipe(
        Effect.catchAllCause((cause) =>
          Cause.isInterruptedOnly(cause)
            ? Effect.interrupt
            : Effect.map(toApiError(cause), (error) => errorResponse(error, context.requestId))
        ),
        Effect.locally(RequestContext.current, Option.some(context))
      )
      const elapsed = (yield* Clock.currentTimeMillis) - started
      yield* Metric.increment(Metric.tagged(Metric.tagged(httpRequests, "method", request.method), "status", `${Math.floor(response.status / 100)}xx`))
      yield* Metric.update(httpDuration, elapsed)
      const limit = context.rateLimit
      const headers: Record<string, string> = { "x-request-id": context.requestId }
      if (limit !== undefined) {
        headers["ratelimit-limit"] = String(limit.limit)
        headers["ratelimit-remaining"] = String(limit.remaining)
        headers["ratelimit-reset"] = String(limit.resetSeconds)
      }
      return HttpServerResponse.setHeaders(response, headers)
    })
})
