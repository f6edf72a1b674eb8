/**
 * API keys: `tsk_` + 32 random bytes (base64url). Only the SHA-256 hash is stored; the plain
 * key leaves the server once, in the answer to its creation.
 */
import type { SqlError } from "@effect/sql/SqlError"
import type { Scope } from "@tessera/domain/ApiKey"
import type { TenantId } from "@tessera/domain/Ids"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { createHash, randomBytes } from "node:crypto"
import { Database } from "./Database.js"

export const hash = (plainKey: string): string => createHash("sha256").update(plainKey).digest("hex")

export interface Created {
  readonly id: string
  readonly prefix: string
  readonly plainKey: Redacted.Redacted<string>
}

export const create = (
  tenantId: TenantId,
  name: string,
  scopes: ReadonlyArray<Scope>
): Effect.Effect<Created, SqlError, Database> =>
  Effect.gen(function*() {
    const db = yield* Database
    const plain = `tsk_${randomBytes(32).toString("base64url")}`
    const id = `key_${randomBytes(8).toString("hex")}`
    const prefix = plain.slice(0, 12)
    yield* db.tenant(tenantId)(db.sql`INSERT INTO api_keys ${
      db.sql.insert({ tenant_id: tenantId, id, name, prefix, key_hash: hash(plain), scopes: `{${scopes.join(",")}}` })
    }`)
    return { id, prefix, plainKey: Redacted.make(plain) }
  })

/** Whether this plain key is a live (not revoked, not expired) key of the tenant. */
export const isLive = (tenantId: TenantId, plainKey: string): Effect.Effect<boolean, SqlError, Database> =>
  Effect.flatMap(Database, (db) =>
    db.tenant(tenantId)(db.sql`SELECT 1 FROM api_keys WHERE tenant_id = ${tenantId} AND key_hash = ${hash(plainKey)}
      AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())`)
  ).pipe(Effect.map((rows) => rows.length > 0))
