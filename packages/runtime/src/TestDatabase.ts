/**
 * A fresh, migrated Postgres database per test file (or benchmark run) on the server at
 * `TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`), dropped when the scope
 * closes. Files run in parallel without seeing each other's rows.
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { randomBytes } from "node:crypto"
import { Database, layerPg } from "./Database.js"
import * as Migrations from "./Migrations.js"

const adminUrl = Config.string("TEST_DATABASE_URL").pipe(
  Config.withDefault("postgres://postgres@127.0.0.1:5432/postgres")
)

/** Whether the test server can load an extension (e.g. `vector`), for suites that need one. */
export const extensionAvailable = (name: string): Effect.Effect<boolean> =>
  Effect.gen(function*() {
    const sql = yield* PgClient.make({ url: Redacted.make(yield* adminUrl), maxConnections: 1 })
    const rows = yield* sql`SELECT 1 FROM pg_available_extensions WHERE name = ${name}`
    return rows.length > 0
  }).pipe(Effect.scoped, Effect.provide(Reactivity.layer), Effect.orDie)

export class TestDatabaseUrl extends Effect.Service<TestDatabaseUrl>()("@tessera/runtime/TestDatabaseUrl", {
  scoped: Effect.gen(function*() {
    const admin = yield* adminUrl
    const name = `tessera_test_${randomBytes(6).toString("hex")}`
    const run = (statement: string) =>
      Effect.scoped(
        Effect.flatMap(
          PgClient.make({ url: Redacted.make(admin), maxConnections: 1 }),
          (sql) => sql.unsafe(statement)
        )
      ).pipe(Effect.provide(Reactivity.layer))
    yield* Effect.acquireRelease(
      run(`CREATE DATABASE ${name}`),
      () => run(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).pipe(Effect.ignore)
    )
    const url = new URL(admin)
    url.pathname = `/${name}`
    return { url: url.toString(), name } as const
  }).pipe(Effect.orDie)
}) {}

/** SqlClient + Database on a fresh migrated database. */
export const layer: Layer.Layer<Database | SqlClient.SqlClient | PgClient.PgClient | TestDatabaseUrl> = Layer.unwrapEffect(
  Effect.map(TestDatabaseUrl, ({ url }) => {
    const sql = layerPg(Redacted.make(url), { maxConnections: 10, applicationName: "tessera-test" })
    return Layer.effectDiscard(Migrations.run).pipe(
      Layer.provideMerge(Database.Default),
      Layer.provideMerge(sql),
      Layer.orDie
    )
  })
).pipe(Layer.provideMerge(TestDatabaseUrl.Default))
