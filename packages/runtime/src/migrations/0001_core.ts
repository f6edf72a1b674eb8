/**
 * The core schema. Tenant-owned tables carry `tenant_id`, have row-level security enabled and
 * FORCED, and a policy on `app.current_tenant_id` for the application role `tessera_app`.
 * `tessera_system` (cross-tenant infrastructure: the outbox relay, the run recovery scan, and
 * the API-key lookup of the edge) gets explicit policies on the few tables it needs. Neither role is a
 * superuser, owns a table, or has BYPASSRLS; the connection user only switches into them.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Plan from "@tessera/domain/Plan"
import * as Effect from "effect/Effect"
import { tenantOwned } from "./tenantOwned.js"

const tenantTables = [
  "tenants",
  "api_keys",
  "sessions",
  "messages",
  "agent_runs",
  "run_steps",
  "usage_counters",
  "audit_logs",
  "outbox"
] as const

/** Tables the system role may read across tenants, and what it may do there. */
const systemAccess: ReadonlyArray<readonly [table: string, commands: "SELECT" | "ALL"]> = [
  ["tenants", "SELECT"],
  ["api_keys", "SELECT"],
  ["agent_runs", "SELECT"],
  ["outbox", "ALL"]
]

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient

  // Roles are global to the Postgres cluster: create them once, tolerating a concurrent creator.
  for (const role of ["tessera_app", "tessera_system"]) {
    yield* sql.unsafe(`
      DO $$ BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${role}') THEN
          CREATE ROLE ${role} NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
        END IF;
      EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
      END $$`)
    yield* sql.unsafe(`
      DO $$ BEGIN
        EXECUTE format('GRANT ${role} TO %I', current_user);
      EXCEPTION WHEN duplicate_object OR invalid_grant_operation OR unique_violation THEN NULL;
      END $$`)
  }

  yield* sql`
    CREATE TABLE plans (
      name text PRIMARY KEY,
      limits jsonb NOT NULL,
      features jsonb NOT NULL DEFAULT '[]'
    )`

  for (const plan of Object.values(Plan.builtIn)) {
    yield* sql`INSERT INTO plans ${
      sql.insert({ name: plan.name, limits: JSON.stringify(plan.limits), features: JSON.stringify(plan.features) })
    }`
  }

  yield* sql`
    CREATE TABLE tenants (
      tenant_id text PRIMARY KEY,
      name text NOT NULL,
      plan text NOT NULL REFERENCES plans(name),
      limits jsonb NOT NULL,
      features jsonb NOT NULL DEFAULT '[]',
      feature_flags jsonb NOT NULL DEFAULT '{}',
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now()
    )`

  yield* sql`
    CREATE TABLE api_keys (
      tenant_id text NOT NULL REFERENCES tenants(tenant_id),
      id text NOT NULL,
      name text NOT NULL,
      prefix text NOT NULL,
      key_hash text NOT NULL UNIQUE,
      scopes text[] NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      expires_at timestamptz,
      revoked_at timestamptz,
      PRIMARY KEY (tenant_id, id)
    )`

  yield* sql`
    CREATE TABLE sessions (
      tenant_id text NOT NULL REFERENCES tenants(tenant_id),
      id text NOT NULL,
      user_id text NOT NULL,
      channel text NOT NULL,
      status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
      next_seq integer NOT NULL DEFAULT 1,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (tenant_id, id)
    )`

  yield* sql`
    CREATE TABLE messages (
      tenant_id text NOT NULL,
      session_id text NOT NULL,
      seq integer NOT NULL,
      id text NOT NULL,
      role text NOT NULL CHECK (role IN ('user', 'assistant', 'system', 'tool')),
      content text NOT NULL,
      run_id text,
      created_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (tenant_id, session_id, seq),
      FOREIGN KEY (tenant_id, session_id) REFERENCES sessions(tenant_id, id)
    )`

  yield* sql`
    CREATE TABLE agent_runs (
      tenant_id text NOT NULL REFERENCES tenants(tenant_id),
      id text NOT NULL,
      session_id text,
      user_id text,
      workflow text NOT NULL,
      status text NOT NULL CHECK (status IN ('requested', 'started', 'completed', 'failed', 'cancelled', 'compensated')),
      input jsonb NOT NULL DEFAULT '{}',
      output jsonb,
      error text,
      attempts integer NOT NULL DEFAULT 0,
      runner text,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      finished_at timestamptz,
      PRIMARY KEY (tenant_id, id)
    )`
  yield* sql`CREATE INDEX agent_runs_unfinished ON agent_runs (updated_at) WHERE status IN ('requested', 'started')`

  yield* sql`
    CREATE TABLE run_steps (
      tenant_id text NOT NULL,
      run_id text NOT NULL,
      step_id text NOT NULL,
      seq integer NOT NULL,
      kind text NOT NULL,
      status text NOT NULL CHECK (status IN ('completed', 'failed')),
      output jsonb,
      started_at timestamptz NOT NULL,
      finished_at timestamptz NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (tenant_id, run_id, step_id),
      FOREIGN KEY (tenant_id, run_id) REFERENCES agent_runs(tenant_id, id)
    )`

  yield* sql`
    CREATE TABLE usage_counters (
      tenant_id text NOT NULL REFERENCES tenants(tenant_id),
      period text NOT NULL CHECK (period IN ('day', 'month')),
      window_start date NOT NULL,
      requests bigint NOT NULL DEFAULT 0,
      tokens bigint NOT NULL DEFAULT 0,
      cost_usd numeric(18, 6) NOT NULL DEFAULT 0,
      runs bigint NOT NULL DEFAULT 0,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (tenant_id, period, window_start)
    )`

  yield* sql`
    CREATE TABLE audit_logs (
      tenant_id text NOT NULL,
      id bigserial,
      actor text NOT NULL,
      action text NOT NULL,
      resource text NOT NULL,
      request_id text,
      details jsonb NOT NULL DEFAULT '{}',
      created_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (tenant_id, id)
    )`

  yield* sql`
    CREATE TABLE outbox (
      seq bigserial PRIMARY KEY,
      tenant_id text NOT NULL,
      event_id text NOT NULL UNIQUE,
      subject text NOT NULL,
      envelope jsonb NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      published_at timestamptz,
      attempts integer NOT NULL DEFAULT 0,
      last_error text,
      dead_at timestamptz
    )`
  yield* sql`CREATE INDEX outbox_pending ON outbox (seq) WHERE published_at IS NULL AND dead_at IS NULL`

  for (const table of tenantTables) yield* tenantOwned(sql, table)
  for (const [table, commands] of systemAccess) {
    yield* sql.unsafe(`GRANT ${commands === "ALL" ? "SELECT, UPDATE" : "SELECT"} ON ${table} TO tessera_system`)
    yield* sql.unsafe(`CREATE POLICY system_access ON ${table} FOR ${commands} TO tessera_system USING (true)`)
  }
  yield* sql`GRANT SELECT ON plans TO tessera_app, tessera_system`
  yield* sql`GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO tessera_app`
})
