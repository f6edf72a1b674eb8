/**
 * `Idempotency-Key` on POSTs: the first request with a key acts and its response is kept (per
 * tenant, `IDEMPOTENCY_TTL`, default 24 hours); a retry with the same key and the same request
 * gets that response again (marked `Idempotent-Replayed: true`) and does not act twice. The same
 * key with a different request is refused (409 `idempotency_key_reused`), as is a retry that
 * arrives while the first is still in flight (409 `idempotency_in_progress`). A first request
 * that fails with a 5xx releases its key, so it may be retried.
 */
import type { SqlError } from "@effect/sql/SqlError"
import { Conflict, Unavailable } from "@tessera/domain/ApiErrors"
import type { TenantId } from "@tessera/domain/Ids"
import { Database } from "@tessera/runtime/Database"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { createHash } from "node:crypto"

export type Claim =
  | { readonly _tag: "Claimed" }
  | { readonly _tag: "Replay"; readonly status: number; readonly body: string; readonly contentType: string }

export interface Request {
  readonly tenantId: TenantId
  readonly key: string
  readonly method: string
  readonly path: string
  readonly body: string
}

interface Row {
  readonly method: string
  readonly path: string
  readonly request_hash: string
  readonly status: number | null
  readonly body: string | null
  readonly content_type: string | null
}

/** Keys are the client's: 1–200 printable characters. */
export const validKey = (key: string): boolean => /^[\x21-\x7e]{1,200}$/.test(key)

const hashOf = (request: Request) =>
  createHash("sha256").update(`${request.method} ${request.path}\n${request.body}`).digest("hex")

const unavailable = (error: SqlError) =>
  new Unavailable({ code: "storage_unavailable", message: `idempotency record: ${error.message}` })

export class Idempotency extends Effect.Service<Idempotency>()("@tessera/server/Idempotency", {
  effect: Effect.gen(function*() {
    const db = yield* Database
    const sql = db.sql
    const ttl = yield* Config.duration("IDEMPOTENCY_TTL").pipe(Config.withDefault(Duration.hours(24)), Effect.orDie)
    const ttlSeconds = Math.ceil(Duration.toSeconds(ttl))

    const begin = (request: Request): Effect.Effect<Claim, Conflict | Unavailable> =>
      db.tenant(request.tenantId)(Effect.gen(function*() {
        const hash = hashOf(request)
        yield* sql`DELETE FROM idempotency_keys WHERE tenant_id = ${request.tenantId} AND key = ${request.key}
          AND created_at < now() - make_interval(secs => ${ttlSeconds})`
        const inserted = yield* sql`INSERT INTO idempotency_keys ${
          sql.insert({ tenant_id: request.tenantId, key: request.key, method: request.method, path: request.path, request_hash: hash })
        } ON CONFLICT DO NOTHING RETURNING key`
        if (inserted.length > 0) return { _tag: "Claimed" } as const
        const row = (yield* sql<Row>`SELECT method, path, request_hash, status, body, content_type FROM idempotency_keys
          WHERE tenant_id = ${request.tenantId} AND key = ${request.key}`)[0]
        if (row === undefined) return { _tag: "Claimed" } as const
        if (row.request_hash !== hash) {
          return yield* new Conflict({
            code: "idempotency_key_reused",
            message: `Idempotency-Key ${JSON.stringify(request.key)} was used for a different request (${row.method} ${row.path})`,
            details: { idempotency_key: request.key }
          })
        }
        if (row.status === null) {
          return yield* new Conflict({
            code: "idempotency_in_progress",
            message: `the first request with Idempotency-Key ${JSON.stringify(request.key)} is still in flight; retry later`,
            details: { idempotency_key: request.key }
          })
        }
        return { _tag: "Replay", status: row.status, body: row.body ?? "", contentType: row.content_type ?? "application/json" } as const
      })).pipe(Effect.catchTag("SqlError", (e) => Effect.fail(unavailable(e))))

    const complete = (request: Request, status: number, body: string, contentType: string): Effect.Effect<void> =>
      db.tenant(request.tenantId)(sql`UPDATE idempotency_keys SET status = ${status}, body = ${body},
        content_type = ${contentType}, completed_at = now()
        WHERE tenant_id = ${request.tenantId} AND key = ${request.key}`).pipe(
          Effect.asVoid,
          Effect.catchAllCause((cause) => Effect.logWarning("could not record an idempotent response", cause))
        )

    const release = (request: Request): Effect.Effect<void> =>
      db.tenant(request.tenantId)(sql`DELETE FROM idempotency_keys WHERE tenant_id = ${request.tenantId}
        AND key = ${request.key} AND status IS NULL`).pipe(
          Effect.asVoid,
          Effect.catchAllCause((cause) => Effect.logWarning("could not release an idempotency key", cause))
        )

    return { begin, complete, release } as const
  })
}) {}

export const layer: Layer.Layer<Idempotency, never, Database> = Idempotency.Default
