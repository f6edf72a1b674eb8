/**
 * The tables of the HTTP edge.
 *
 * - `users`: a tenant's people and their role (owner, admin, agent, viewer → scopes, see the
 *   server's Rbac); `password_hash` (scrypt) when they may exchange a password for a token.
 * - `api_keys` gains `rotated_to`: the key that replaced it (its own `expires_at` is then the end
 *   of the overlap window).
 * - `idempotency_keys`: the first response to a POST with an `Idempotency-Key`, per tenant;
 *   `status` is null while the first request is still in flight.
 * - `realtime_finals`: the final frames (run answers) of the WebSocket gateway, numbered, so a
 *   client that reconnects with its last frame id receives what it missed.
 * - `signing_keys`: the RS256 keys that sign access tokens (global, not tenant data); the newest
 *   signs, retired ones stay published until the tokens they signed have expired.
 *
 * Tenant tables are tenant-owned (row-level security forced); API keys are found across tenants
 * by hash through the system role's existing read access to `api_keys`.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { tenantOwned } from "./tenantOwned.js"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient

  yield* sql`
    CREATE TABLE users (
      tenant_id text NOT NULL REFERENCES tenants(tenant_id),
      id text NOT NULL,
      email text NOT NULL,
      role text NOT NULL CHECK (role IN ('owner', 'admin', 'agent', 'viewer')),
      password_hash text,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (tenant_id, id),
      UNIQUE (tenant_id, email)
    )`

  yield* sql`ALTER TABLE api_keys ADD COLUMN rotated_to text`

  yield* sql`
    CREATE TABLE idempotency_keys (
      tenant_id text NOT NULL,
      key text NOT NULL,
      method text NOT NULL,
      path text NOT NULL,
      request_hash text NOT NULL,
      status integer,
      body text,
      content_type text,
      created_at timestamptz NOT NULL DEFAULT now(),
      completed_at timestamptz,
      PRIMARY KEY (tenant_id, key)
    )`

  yield* sql`
    CREATE TABLE realtime_finals (
      seq bigserial PRIMARY KEY,
      tenant_id text NOT NULL,
      session_id text,
      run_id text NOT NULL,
      frame jsonb NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      UNIQUE (tenant_id, run_id)
    )`
  yield* sql`CREATE INDEX realtime_finals_session ON realtime_finals (tenant_id, session_id, seq)`

  yield* sql`
    CREATE TABLE signing_keys (
      kid text PRIMARY KEY,
      private_jwk jsonb NOT NULL,
      public_jwk jsonb NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      retired_at timestamptz
    )`

  for (const table of ["users", "idempotency_keys", "realtime_finals"]) yield* tenantOwned(sql, table)
  yield* sql`GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO tessera_app`
})
