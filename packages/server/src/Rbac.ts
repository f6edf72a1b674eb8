/**
 * Role-based access per tenant: a user's role maps to scopes, an API key carries scopes, and each
 * route needs one scope (`read` to look, `write` to act, `admin` to administer). A credential
 * without the scope gets 403; it never learns more than that.
 */
import type { Role } from "@tessera/domain/Admin"
import type { Scope } from "@tessera/domain/ApiKey"
import { Forbidden } from "@tessera/domain/ApiErrors"
import { CurrentPrincipal, type Principal } from "@tessera/domain/Principal"
import * as Effect from "effect/Effect"

export const scopesOf: Record<Role, ReadonlyArray<Scope>> = {
  owner: ["read", "write", "admin"],
  admin: ["read", "write", "admin"],
  agent: ["read", "write"],
  viewer: ["read"]
}

/** The caller, when it holds `scope`; 403 otherwise. */
export const requireScope = (scope: Scope): Effect.Effect<Principal, Forbidden, CurrentPrincipal> =>
  Effect.flatMap(CurrentPrincipal, (principal) =>
    principal.has(scope)
      ? Effect.succeed(principal)
      : Effect.fail(
        new Forbidden({
          code: "insufficient_scope",
          message: `this credential lacks the "${scope}" scope`,
          details: { required: scope, granted: principal.scopes }
        })
      ))
