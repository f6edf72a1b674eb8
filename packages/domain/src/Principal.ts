/**
 * Who is calling: the tenant always comes from the credential (an API key or a JWT it was
 * exchanged for), never from a request body.
 */
import * as Context from "effect/Context"
import * as Schema from "effect/Schema"
import { Scope } from "./ApiKey.js"
import { TenantId } from "./Ids.js"

export const CredentialKind = Schema.Literal("api_key", "jwt")
export type CredentialKind = typeof CredentialKind.Type

export class Principal extends Schema.Class<Principal>("Principal")({
  tenantId: TenantId,
  /** The API key id, or the JWT's subject (`key:<id>` or `user:<id>`). */
  subject: Schema.String,
  /** The API key behind the credential (for per-key rate limits); null for a user's token. */
  keyId: Schema.NullOr(Schema.String),
  scopes: Schema.Array(Scope),
  credential: CredentialKind
}) {
  has(scope: Scope): boolean {
    return this.scopes.includes(scope)
  }
}

export class CurrentPrincipal extends Context.Tag("@tessera/domain/CurrentPrincipal")<CurrentPrincipal, Principal>() {}
