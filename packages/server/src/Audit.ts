/**
 * The audit log: every admin action writes one `audit_logs` row in the tenant (who, what, which
 * resource, the request id, details with PII redacted). Writing it is part of the action: if the
 * row cannot be written the request fails with 503.
 */
import { Unavailable } from "@tessera/domain/ApiErrors"
import type { Principal } from "@tessera/domain/Principal"
import { Database } from "@tessera/runtime/Database"
import * as Effect from "effect/Effect"
import { redact } from "./Pii.js"
import * as RequestContext from "./RequestContext.js"

export const record = (
  principal: Pick<Principal, "tenantId" | "subject">,
  action: string,
  resource: string,
  details: Record<string, unknown> = {}
): Effect.Effect<void, Unavailable, Database> =>
  Effect.gen(function*() {
    const db = yield* Database
    const requestId = yield* RequestContext.requestId
    yield* db.tenant(principal.tenantId)(db.sql`INSERT INTO audit_logs ${
      db.sql.insert({
        tenant_id: principal.tenantId,
        actor: principal.subject,
        action,
        resource,
        request_id: requestId === "" ? null : requestId,
        details: JSON.stringify(redact(details))
      })
    }`)
  }).pipe(
    Effect.catchTag("SqlError", (e) => Effect.fail(new Unavailable({ code: "storage_unavailable", message: `audit log: ${e.message}` })))
  )
