/**
 * `POST /v1/auth/token`: a short-lived RS256 JWT in exchange for the API key presented with the
 * request (`Authorization: Bearer` or `X-API-Key`). The token carries the key's tenant and scopes.
 * `POST /v1/auth/password`: the same for a user's e-mail and password; the token carries the
 * scopes of the user's role.
 */
import * as Schema from "effect/Schema"
import { TenantId } from "./Ids.js"

export class PasswordGrant extends Schema.Class<PasswordGrant>("PasswordGrant")({
  tenant_id: TenantId,
  email: Schema.String.pipe(Schema.maxLength(320)),
  password: Schema.String.pipe(Schema.maxLength(200))
}) {}

export class TokenResponse extends Schema.Class<TokenResponse>("TokenResponse")({
  access_token: Schema.String,
  token_type: Schema.Literal("Bearer"),
  /** Seconds until the token expires. */
  expires_in: Schema.Int,
  scope: Schema.String
}) {}

/** One public key of `/.well-known/jwks.json` (RFC 7517). */
export const Jwk = Schema.Struct({
  kty: Schema.String,
  kid: Schema.String,
  alg: Schema.String,
  use: Schema.String,
  n: Schema.String,
  e: Schema.String
})
export type Jwk = typeof Jwk.Type

export class Jwks extends Schema.Class<Jwks>("Jwks")({
  keys: Schema.Array(Jwk)
}) {}
