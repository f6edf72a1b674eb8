import type * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

/**
 * Makes a table tenant-owned: the `(tenant_id, created_at)` index, row-level security enabled
 * and FORCED, and the `tenant_isolation` policy for `tessera_app` on `app.current_tenant_id`.
 */
export const tenantOwned = (sql: SqlClient.SqlClient, table: string) =>
  Effect.gen(function*() {
    yield* sql.unsafe(`CREATE INDEX ${table}_tenant_created ON ${table} (tenant_id, created_at)`)
    yield* sql.unsafe(`ALTER TABLE ${table} ENABLE ROW LEVEL SECURITY`)
    yield* sql.unsafe(`ALTER TABLE ${table} FORCE ROW LEVEL SECURITY`)
    yield* sql.unsafe(`GRANT SELECT, INSERT, UPDATE, DELETE ON ${table} TO tessera_app`)
    yield* sql.unsafe(`
      CREATE POLICY tenant_isolation ON ${table} TO tessera_app
        USING (tenant_id = current_setting('app.current_tenant_id', true))
        WITH CHECK (tenant_id = current_setting('app.current_tenant_id', true))`)
  })
