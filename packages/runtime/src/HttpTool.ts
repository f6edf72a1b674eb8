/**
 * `http`: calls one of the tenant's configured endpoints (`tenant_http_endpoints`: a name, a URL
 * and an HMAC secret) with a JSON body. The request carries
 * `X-Tessera-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes with the endpoint's secret>`,
 * `Idempotency-Key` (run id + step id, the same on every retry) and `X-Tessera-Tenant`. The
 * endpoint's own timeout bounds each attempt; timeouts, transport failures, 429 and 5xx are
 * retryable (the registry retries them), other 4xx are not.
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { ToolFailed } from "@tessera/domain/ToolError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { createHmac } from "node:crypto"
import { Database } from "./Database.js"
import * as Tool from "./Tool.js"

export const signatureHeader = "x-tessera-signature"

/** `sha256=<hex>`: what a receiver recomputes over the raw body to authenticate the call. */
export const sign = (secret: string, body: string): string =>
  `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`

export const HttpInput = Schema.Struct({
  endpoint: Schema.String.pipe(Schema.minLength(1)),
  method: Schema.optionalWith(Schema.Literal("POST", "PUT", "PATCH"), { default: () => "POST" as const }),
  path: Schema.optionalWith(Schema.String.pipe(Schema.pattern(/^(\/[^\s]*)?$/, { message: () => "must start with /" })), {
    default: () => ""
  }),
  body: Schema.optionalWith(Schema.Unknown, { default: () => ({}) })
})

export const HttpOutput = Schema.Struct({
  status: Schema.Int,
  body: Schema.Unknown
})

interface EndpointRow {
  readonly url: string
  readonly secret: string
  readonly timeout_ms: number
}

export const make = Effect.gen(function*() {
  const db = yield* Database
  const client = yield* HttpClient.HttpClient
  const tool = "http"
  const fail = (reason: string, retryable: boolean) => new ToolFailed({ tool, reason, retryable })

  const http = Tool.make({
    name: tool,
    description: "Calls a tenant-configured HTTP endpoint with an HMAC-signed JSON body.",
    input: HttpInput,
    output: HttpOutput,
    timeout: "30 seconds",
    retry: Tool.ioRetry,
    idempotent: false,
    transactional: false,
    run: (input, context) =>
      Effect.gen(function*() {
        const rows = yield* db.tenant(context.tenantId)(db.sql<EndpointRow>`SELECT url, secret, timeout_ms
          FROM tenant_http_endpoints WHERE tenant_id = ${context.tenantId} AND name = ${input.endpoint}`).pipe(
          Effect.mapError(Tool.storageFailure(tool))
        )
        const endpoint = rows[0]
        if (endpoint === undefined) return yield* fail(`no endpoint named ${input.endpoint} is configured`, false)
        const body = JSON.stringify(input.body)
        const request = HttpClientRequest.make(input.method)(`${endpoint.url.replace(/\/$/, "")}${input.path}`).pipe(
          HttpClientRequest.setHeaders({
            "content-type": "application/json",
            [signatureHeader]: sign(endpoint.secret, body),
            "idempotency-key": context.idempotencyKey,
            "x-tessera-tenant": context.tenantId
          }),
          HttpClientRequest.bodyText(body, "application/json")
        )
        const timeout = Duration.millis(endpoint.timeout_ms)
        const response = yield* client.execute(request).pipe(
          Effect.mapError((error) => fail(`transport: ${error.message}`, true)),
          Effect.timeoutFail({ duration: timeout, onTimeout: () => fail(`no response within ${Duration.format(timeout)}`, true) })
        )
        const text = yield* response.text.pipe(Effect.mapError((error) => fail(`reading the response: ${error.message}`, true)))
        if (response.status >= 400) {
          return yield* fail(
            `endpoint ${input.endpoint} answered ${response.status}: ${text.slice(0, 200)}`,
            response.status === 429 || response.status >= 500
          )
        }
        return { status: response.status, body: parseBody(text) }
      }).pipe(Effect.scoped)
  })

  return [http] as const
})

const parseBody = (text: string): unknown => {
  if (text === "") return null
  try {
    const parsed: unknown = JSON.parse(text)
    return parsed
  } catch {
    return text
  }
}
