/**
 * Tenant workflow overlays: a tenant's version of a shared workflow, stored as the YAML the tenant
 * uploaded (`extends:` the shared workflow, replacing named steps). The WorkflowRegistry validates
 * an overlay before storing it and again when it loads the table (a node start, a refresh).
 * Tenant-owned (row-level security forced); the system role may read every tenant's overlays,
 * which is how a node loads them all at once.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { tenantOwned } from "./tenantOwned.js"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient

  yield* sql`
    CREATE TABLE workflow_overlays (
      tenant_id text NOT NULL,
      name text NOT NULL,
      source text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (tenant_id, name)
    )`
  yield* tenantOwned(sql, "workflow_overlays")
  yield* sql`GRANT SELECT ON workflow_overlays TO tessera_system`
  yield* sql`CREATE POLICY system_access ON workflow_overlays FOR SELECT TO tessera_system USING (true)`
})
