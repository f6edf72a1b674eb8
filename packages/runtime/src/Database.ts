/**
 * Every query on tenant-owned tables runs through `tenant` (as `tessera_app`, with the tenant set
 * for the transaction, so row-level security scopes it) or `system` (as `tessera_system`, for the
 * few cross-tenant infrastructure jobs that the schema grants explicit policies to). Both use
 * `set_config(…, true)`: the role and the tenant end with the transaction, so a pooled
 * connection never carries them to the next user. `systemSession` holds one connection as
 * `tessera_system` for a job that runs many single statements (the run journal's group commit).
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"

export class Database extends Effect.Service<Database>()("@tessera/runtime/Database", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient

    const tenant = (tenantId: string) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      sql.withTransaction(
        Effect.zipRight(
          sql`SELECT set_config('role', 'tessera_app', true), set_config('app.current_tenant_id', ${tenantId}, true)`,
          effect
        )
      ).pipe(Effect.annotateLogs("tenant_id", tenantId))

    const system = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      sql.withTransaction(
        Effect.zipRight(sql`SELECT set_config('role', 'tessera_system', true)`, effect)
      )

    /**
     * A connection held by a long-lived system job (JournalWriter, JournalReader) for the scope:
     * `tessera_system` for the whole session rather than per transaction, so each statement the
     * job runs through the answered function costs one round trip, autocommit (no BEGIN,
     * set_config, COMMIT). Only single statements belong there. The role is reset before the
     * connection returns to the pool.
     */
    const systemSession = Effect.gen(function*() {
      const connection = yield* sql.reserve
      yield* connection.executeRaw("SET ROLE tessera_system", [])
      yield* Effect.addFinalizer(() => Effect.ignore(connection.executeRaw("RESET ROLE", [])))
      const held = [connection, 1] as const
      const session: Session = (effect) =>
        effect.pipe(
          Effect.provideService(SqlClient.TransactionConnection, held),
          Effect.provideService(SqlClient.SqlClient, sql)
        )
      return session
    })

    return { sql, tenant, system, systemSession } as const
  })
}) {}

/** Runs single statements on a connection held as `tessera_system` (`Database.systemSession`). */
export type Session = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, Exclude<R, SqlClient.SqlClient>>

/** A Postgres pool for a URL; `maxConnections` defaults to 20. */
export const layerPg = (
  url: Redacted.Redacted,
  options?: { readonly maxConnections?: number; readonly applicationName?: string }
): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, SqlError> =>
  PgClient.layer({
    url,
    maxConnections: options?.maxConnections ?? 20,
    applicationName: options?.applicationName ?? "tessera",
    connectTimeout: "5 seconds"
  })

/** A `postgres://` or `postgresql://` URL; anything else is refused with the reason (never the URL: it may hold a password). */
export const urlConfig = (name: string): Config.Config<Redacted.Redacted> =>
  Config.redacted(name).pipe(Config.mapOrFail((url) => {
    const fail = (why: string) => Either.left(ConfigError.InvalidData([name], why))
    let parsed: URL
    try {
      parsed = new URL(Redacted.value(url))
    } catch {
      return fail("is not a URL (expected postgres://user:password@host:5432/database)")
    }
    return parsed.protocol === "postgres:" || parsed.protocol === "postgresql:"
      ? Either.right(url)
      : fail(`has protocol ${parsed.protocol} (expected postgres:)`)
  }))

/** `DATABASE_URL` (required), `DATABASE_POOL_SIZE` (default 20). */
export const layerConfig: Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, ConfigError.ConfigError | SqlError> = Layer.unwrapEffect(
  Effect.gen(function*() {
    const url = yield* urlConfig("DATABASE_URL")
    const maxConnections = yield* Config.integer("DATABASE_POOL_SIZE").pipe(Config.withDefault(20))
    return layerPg(url, { maxConnections })
  })
)
