import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { Database } from "../src/Database.js"
import * as TestDatabase from "../src/TestDatabase.js"

const seed = Effect.gen(function*() {
  const db = yield* Database
  const sql = db.sql
  for (const t of ["tenant_a", "tenant_b"]) {
    yield* db.tenant(t)(Effect.gen(function*() {
      yield* sql`INSERT INTO tenants (tenant_id, name, plan, limits) VALUES (${t}, ${t}, 'free', '{}') ON CONFLICT DO NOTHING`
      yield* sql`INSERT INTO sessions (tenant_id, id, user_id, channel) VALUES (${t}, ${`s_${t}`}, 'u1', 'web')
        ON CONFLICT DO NOTHING`
    }))
  }
})

describe("row-level security", () => {
  it.layer(TestDatabase.layer)((it) => {
    it.effect("tenant A cannot read, update or insert tenant B's rows, even by hand-written SQL", () =>
      Effect.gen(function*() {
        yield* seed
        const db = yield* Database
        const sql = db.sql

        const visible = yield* db.tenant("tenant_a")(sql<{ id: string }>`SELECT id FROM sessions`)
        assert.deepStrictEqual(visible.map((r) => r.id), ["s_tenant_a"])

        const byHand = yield* db.tenant("tenant_a")(
          sql<{ id: string }>`SELECT id FROM sessions WHERE tenant_id = 'tenant_b'`
        )
        assert.strictEqual(byHand.length, 0)

        const updated = yield* db.tenant("tenant_a")(
          sql`UPDATE sessions SET status = 'closed' WHERE tenant_id = 'tenant_b' RETURNING id`
        )
        assert.strictEqual(updated.length, 0)

        const refused = yield* db.tenant("tenant_a")(
          sql`INSERT INTO sessions (tenant_id, id, user_id, channel) VALUES ('tenant_b', 'sneaky', 'u', 'web')`
        ).pipe(Effect.flip)
        assert.match(refused.cause instanceof Error ? refused.cause.message : "", /row-level security/)

        const stillB = yield* db.tenant("tenant_b")(sql<{ id: string; status: string }>`SELECT id, status FROM sessions`)
        assert.deepStrictEqual(stillB.map((r) => [r.id, r.status]), [["s_tenant_b", "open"]])
      }))

    it.effect("a tenant id is a literal: quotes in it neither break out nor widen the scope", () =>
      Effect.gen(function*() {
        yield* seed
        const db = yield* Database
        const setting = yield* db.tenant("o'brien'); RESET ROLE; --")(
          db.sql<{ tenant: string; role: string }>`SELECT current_setting('app.current_tenant_id') AS tenant, current_user AS role`
        )
        assert.deepStrictEqual(setting, [{ tenant: "o'brien'); RESET ROLE; --", role: "tessera_app" }])
        const visible = yield* db.tenant("tenant_a' OR true OR tenant_id = '")(db.sql`SELECT id FROM sessions`)
        assert.strictEqual(visible.length, 0)
      }))

    it.effect("a nested tenant transaction scopes its statements to its own tenant, and the outer one to the outer tenant after it", () =>
      Effect.gen(function*() {
        yield* seed
        const db = yield* Database
        const sessions = db.sql<{ id: string }>`SELECT id FROM sessions`.pipe(Effect.map((rows) => rows.map((r) => r.id).join(",")))
        const role = db.sql<{ role: string }>`SELECT current_user AS role`.pipe(Effect.map((rows) => rows[0]?.role ?? ""))
        const seen = yield* db.tenant("tenant_a")(Effect.all([
          sessions,
          db.tenant("tenant_b")(sessions),
          sessions,
          db.tenant("tenant_b")(Effect.zipRight(sessions, Effect.fail("inner failure"))).pipe(Effect.as("failed"), Effect.ignore, Effect.as("failed")),
          sessions,
          db.system(role),
          role,
          sessions
        ]))
        assert.deepStrictEqual(seen, ["s_tenant_a", "s_tenant_b", "s_tenant_a", "failed", "s_tenant_a", "tessera_system", "tessera_app", "s_tenant_a"])
      }))

    it.effect("without a tenant set, the application role sees nothing", () =>
      Effect.gen(function*() {
        yield* seed
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql.withTransaction(
          Effect.zipRight(sql`SELECT set_config('role', 'tessera_app', true)`, sql`SELECT * FROM sessions`)
        )
        assert.strictEqual(rows.length, 0)
      }))

    it.effect("the application roles are neither superusers, table owners nor RLS bypassers", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const roles = yield* sql<{ rolname: string; rolsuper: boolean; rolbypassrls: boolean }>`
          SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname IN ('tessera_app', 'tessera_system') ORDER BY rolname`
        assert.deepStrictEqual(roles.map((r) => [r.rolname, r.rolsuper, r.rolbypassrls]), [
          ["tessera_app", false, false],
          ["tessera_system", false, false]
        ])
        const owned = yield* sql<{ tablename: string }>`
          SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tableowner IN ('tessera_app', 'tessera_system')`
        assert.strictEqual(owned.length, 0)
        // Every table with a tenant_id column (today's and any later migration's) is isolated.
        const unprotected = yield* sql<{ table_name: string }>`
          SELECT c.table_name FROM information_schema.columns c
          JOIN pg_class t ON t.relname = c.table_name AND t.relkind = 'r'
          JOIN pg_namespace n ON n.oid = t.relnamespace AND n.nspname = c.table_schema
          WHERE c.table_schema = 'public' AND c.column_name = 'tenant_id'
            AND NOT (t.relrowsecurity AND t.relforcerowsecurity
              AND EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = t.oid AND p.polname = 'tenant_isolation'))`
        assert.deepStrictEqual(unprotected.map((r) => r.table_name), [])
        const tenantTables = yield* sql<{ n: string }>`SELECT count(*) AS n FROM information_schema.columns
          WHERE table_schema = 'public' AND column_name = 'tenant_id'`
        assert.isAtLeast(Number(tenantTables[0]?.n), 12)
        const current = yield* Effect.flatMap(Database, (db) =>
          db.tenant("tenant_a")(sql<{ role: string; tenant: string }>`SELECT current_user AS role, current_setting('app.current_tenant_id') AS tenant`)
        )
        assert.deepStrictEqual(current.map((r) => [r.role, r.tenant]), [["tessera_app", "tenant_a"]])
      }))
  })
})
