/**
 * Every query on tenant-owned tables runs through `tenant` (as `tessera_app`, with the tenant set
 * for the transaction, so row-level security scopes it) or `system` (as `tessera_system`, for the
 * few cross-tenant infrastructure jobs that the schema grants explicit policies to). Both use
 * `set_config(…, true)`, sent with the transaction's BEGIN (one round trip): the role and the
 * tenant end with the transaction, so a pooled connection never carries them to the next user. `systemSession` holds one connection as
 * `tessera_system` for a job that runs many single statements (the run journal's group commit).
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FiberRef from "effect/FiberRef"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"

/** A Postgres string literal (standard_conforming_strings: only quotes are doubled). */
const literal = (value: string): string => {
  if (value.includes("\u0000")) throw new TypeError("a tenant id cannot contain NUL")
  return `'${value.replaceAll("'", "''")}'`
}

/** The settings of the innermost transaction the fiber is in (`Database.tenant` / `system`). */
const currentSettings = FiberRef.unsafeMake<string | undefined>(undefined)

export class Database extends Effect.Service<Database>()("@tessera/runtime/Database", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient

    /**
     * A transaction whose settings are sent with its BEGIN (one simple-protocol round trip: no
     * parameters there, so the values are literals) and, nested, with its SAVEPOINT.
     */
    const transaction = (settings: string) =>
      SqlClient.makeWithTransaction({
        transactionTag: SqlClient.TransactionConnection,
        spanAttributes: [],
        acquireConnection: Effect.flatMap(
          Scope.make(),
          (scope) => Effect.map(Scope.extend(sql.reserve, scope), (connection) => [scope, connection] as const)
        ),
        begin: (connection) => connection.executeUnprepared(`BEGIN; ${settings}`, [], undefined),
        savepoint: (connection, id) => connection.executeUnprepared(`SAVEPOINT tessera_${id}; ${settings}`, [], undefined),
        commit: (connection) => connection.executeUnprepared("COMMIT", [], undefined),
        rollback: (connection) => connection.executeUnprepared("ROLLBACK", [], undefined),
        rollbackSavepoint: (connection, id) => connection.executeUnprepared(`ROLLBACK TO SAVEPOINT tessera_${id}`, [], undefined)
      })

    /**
     * Runs `effect` in a transaction with `settings`. Settings made in a savepoint outlive it, so a
     * transaction nested in one with other settings (another tenant, the system role) puts the outer
     * ones back when it ends: the rest of the outer transaction must not run as the inner tenant.
     */
    const withSettings = (settings: string) => {
      const inTransaction = transaction(settings)
      return <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | SqlError, R> =>
        Effect.flatMap(FiberRef.get(currentSettings), (outer) => {
          const inner = inTransaction(Effect.locally(effect, currentSettings, settings))
          return outer === undefined || outer === settings ? inner : Effect.ensuring(inner, Effect.orDie(sql.unsafe(outer)))
        })
    }

    const tenant = (tenantId: string) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      withSettings(
        `SELECT set_config('role', 'tessera_app', true), set_config('app.current_tenant_id', ${literal(tenantId)}, true)`
      )(effect).pipe(Effect.annotateLogs("tenant_id", tenantId))

    const system = withSettings("SELECT set_config('role', 'tessera_system', true)")

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
