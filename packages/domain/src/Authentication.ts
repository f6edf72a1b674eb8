/**
 * The security of the HTTP API: `Authorization: Bearer <API key or JWT>` or `X-API-Key: <key>`.
 * Authenticated endpoints receive the caller's `Principal`; a missing, unknown, revoked or
 * expired credential, or an invalid token, fails with 401. The tenant is the credential's: a body
 * naming another (`tenant_id` or `tenantId`) fails with 403.
 */
import * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import * as HttpApiSecurity from "@effect/platform/HttpApiSecurity"
import * as Schema from "effect/Schema"
import { Forbidden, TooManyRequests, Unauthorized, Unavailable } from "./ApiErrors.js"
import { CurrentPrincipal } from "./Principal.js"

export class Authentication extends HttpApiMiddleware.Tag<Authentication>()("@tessera/domain/Authentication", {
  failure: Schema.Union(Unauthorized, Forbidden, TooManyRequests, Unavailable),
  provides: CurrentPrincipal,
  security: {
    bearer: HttpApiSecurity.bearer,
    apiKey: HttpApiSecurity.apiKey({ key: "X-API-Key", in: "header" })
  }
}) {}
