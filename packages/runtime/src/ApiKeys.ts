/**
 * API keys: `tsk_` + 32 random bytes (base64url). Only the SHA-256 hash is stored; the plain
 * key leaves the server once, in the answer to its creation. A key is live until it is revoked
 * or expires; rotation issues a new key with the same name and scopes and lets the old one live
 * on for an overlap window.
 */
import type { SqlError } from "@effect/sql/SqlError"
import { ApiKey, type Scope } from "@tessera/domain/ApiKey"
import { StorageError } from "@tessera/domain/Errors"
import type { TenantId } from "@tessera/domain/Ids"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { createHash, randomBytes } from "node:crypto"
import { Database } from "./Database.js"

export const hash = (plainKey: string): string => createHash("sha256").update(plainKey).digest("hex")

/** The shape of a plain key; anything else is not looked up. */
export const looksLikeKey = (value: string): boolean => /^tsk_[A-Za-z0-9_-]{43}$/.test(value)

export interface Created {
  readonly id: string
  readonly prefix: string
  readonly plainKey: Redacted.Redacted<string>
}

export interface CreateOptions {
  /** When the key stops working; never when absent. */
  readonly expiresAt?: Date
}

interface KeyRow {
  readonly tenant_id: string
  readonly id: string
  readonly name: string
  readonly prefix: string
  readonly scopes: ReadonlyArray<string>
  readonly created_at: Date
  readonly expires_at: Date | null
  readonly revoked_at: Date | null
}

const decodeKey = (row: KeyRow): Effect.Effect<ApiKey, StorageError> =>
  Schema.decodeUnknown(ApiKey)({
    id: row.id,
    tenantId: row.tenant_id,
    name: row.name,
    prefix: row.prefix,
    scopes: row.scopes,
    createdAt: row.created_at.toISOString(),
    expiresAt: row.expires_at?.toISOString() ?? null,
    revokedAt: row.revoked_at?.toISOString() ?? null
  }).pipe(Effect.mapError((e) => new StorageError({ operation: "decode api key", reason: e.message })))

export const create = (
  tenantId: TenantId,
  name: string,
  scopes: ReadonlyArray<Scope>,
  options: CreateOptions = {}
): Effect.Effect<Created, SqlError, Database> =>
  Effect.gen(function*() {
    const db = yield* Database
    const plain = `tsk_${randomBytes(32).toString("base64url")}`
    const id = `key_${randomBytes(8).toString("hex")}`
    const prefix = plain.slice(0, 12)
    yield* db.tenant(tenantId)(db.sql`INSERT INTO api_keys ${
      db.sql.insert({
        tenant_id: tenantId,
        id,
        name,
        prefix,
        key_hash: hash(plain),
        scopes: `{${scopes.join(",")}}`,
        expires_at: options.expiresAt ?? null
      })
    }`)
    return { id, prefix, plainKey: Redacted.make(plain) }
  })

/** Whether this plain key is a live (not revoked, not expired) key of the tenant. */
export const isLive = (tenantId: TenantId, plainKey: string): Effect.Effect<boolean, SqlError, Database> =>
  Effect.flatMap(Database, (db) =>
    db.tenant(tenantId)(db.sql`SELECT 1 FROM api_keys WHERE tenant_id = ${tenantId} AND key_hash = ${hash(plainKey)}
      AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())`)
  ).pipe(Effect.map((rows) => rows.length > 0))

export interface Resolved {
  readonly tenantId: string
  readonly id: string
  readonly scopes: ReadonlyArray<string>
  readonly expiresAt: Date | null
}

/**
 * The live key with this plain value, in whichever tenant it belongs to (the system role's
 * read access to `api_keys`); undefined for an unknown, revoked or expired key.
 */
export const resolve = (plainKey: string): Effect.Effect<Resolved | undefined, SqlError, Database> =>
  looksLikeKey(plainKey)
    ? Effect.flatMap(Database, (db) =>
      db.system(db.sql<{ tenant_id: string; id: string; scopes: ReadonlyArray<string>; expires_at: Date | null }>`
        SELECT tenant_id, id, scopes, expires_at FROM api_keys WHERE key_hash = ${hash(plainKey)}
          AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())`)
    ).pipe(Effect.map((rows) => {
      const row = rows[0]
      return row === undefined ? undefined : { tenantId: row.tenant_id, id: row.id, scopes: row.scopes, expiresAt: row.expires_at }
    }))
    : Effect.succeed(undefined)

/** The tenant's key with this id while it is live (not revoked, not expired); undefined otherwise. */
export const resolveId = (tenantId: TenantId, id: string): Effect.Effect<Resolved | undefined, SqlError, Database> =>
  Effect.flatMap(Database, (db) =>
    db.tenant(tenantId)(db.sql<{ scopes: ReadonlyArray<string>; expires_at: Date | null }>`
      SELECT scopes, expires_at FROM api_keys WHERE tenant_id = ${tenantId} AND id = ${id}
        AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())`)
  ).pipe(Effect.map((rows) => {
    const row = rows[0]
    return row === undefined ? undefined : { tenantId, id, scopes: row.scopes, expiresAt: row.expires_at }
  }))

export const list = (tenantId: TenantId): Effect.Effect<ReadonlyArray<ApiKey>, SqlError | StorageError, Database> =>
  Effect.flatMap(Database, (db) =>
    db.tenant(tenantId)(db.sql<KeyRow>`SELECT * FROM api_keys WHERE tenant_id = ${tenantId} ORDER BY created_at, id`)
  ).pipe(Effect.flatMap((rows) => Effect.forEach(rows, decodeKey)))

/** Revokes the key now; undefined when the tenant has no such key. Revoking twice keeps the first time. */
export const revoke = (tenantId: TenantId, id: string): Effect.Effect<ApiKey | undefined, SqlError | StorageError, Database> =>
  Effect.flatMap(Database, (db) =>
    db.tenant(tenantId)(db.sql<KeyRow>`UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
      WHERE tenant_id = ${tenantId} AND id = ${id} RETURNING *`)
  ).pipe(Effect.flatMap((rows) => rows[0] === undefined ? Effect.succeed(undefined) : decodeKey(rows[0])))

/**
 * A new key with the old one's name and scopes; the old one keeps working for `overlapSeconds`
 * (its expiry is brought forward, never pushed back). Undefined when the tenant has no such live key.
 */
export const rotate = (
  tenantId: TenantId,
  id: string,
  overlapSeconds: number
): Effect.Effect<{ readonly created: Created; readonly key: ApiKey } | undefined, SqlError | StorageError, Database> =>
  Effect.gen(function*() {
    const db = yield* Database
    return yield* db.tenant(tenantId)(Effect.gen(function*() {
      const old = (yield* db.sql<KeyRow>`SELECT * FROM api_keys WHERE tenant_id = ${tenantId} AND id = ${id}
        AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()) FOR UPDATE`)[0]
      if (old === undefined) return undefined
      const scopes = old.scopes.filter((s): s is Scope => s === "read" || s === "write" || s === "admin")
      const created = yield* create(tenantId, old.name, scopes, old.expires_at === null ? {} : { expiresAt: old.expires_at })
      const until = new Date((yield* Clock.currentTimeMillis) + overlapSeconds * 1000)
      yield* db.sql`UPDATE api_keys SET rotated_to = ${created.id},
        expires_at = CASE WHEN expires_at IS NULL OR expires_at > ${until} THEN ${until} ELSE expires_at END
        WHERE tenant_id = ${tenantId} AND id = ${id}`
      const rows = yield* db.sql<KeyRow>`SELECT * FROM api_keys WHERE tenant_id = ${tenantId} AND id = ${created.id}`
      return { created, key: yield* decodeKey(rows[0]!) }
    }))
  })
