/**
 * LLM gateway and router state, both tenant-owned (row-level security forced):
 * - `llm_tenant_routes`: a tenant's own routes for a tier (`LlmRoutes` syntax, e.g.
 *   `openai:gpt-4o-mini, anthropic:claude-3-5-haiku-latest`), overriding the node's defaults;
 * - `router_state`: the router's learned state per tenant and name (`policy`: classifier
 *   weights, bandit matrices, canary, history statistics) as JSON, so it survives restarts.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { tenantOwned } from "./tenantOwned.js"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient

  yield* sql`
    CREATE TABLE llm_tenant_routes (
      tenant_id text NOT NULL,
      tier text NOT NULL CHECK (tier IN ('SLM_A', 'SLM_B', 'LLM')),
      routes text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (tenant_id, tier)
    )`
  yield* tenantOwned(sql, "llm_tenant_routes")

  yield* sql`
    CREATE TABLE router_state (
      tenant_id text NOT NULL,
      name text NOT NULL,
      state jsonb NOT NULL,
      version bigint NOT NULL DEFAULT 1,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (tenant_id, name)
    )`
  yield* tenantOwned(sql, "router_state")
})
