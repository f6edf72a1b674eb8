/**
 * What the router learns from after generation time, both tenant-owned (row-level security forced):
 * - `run_feedback`: a user's rating of a run (`POST /v1/runs/:id/feedback`), one row per run (a
 *   second rating replaces the first); `pending` until a router node has applied it to the run's
 *   decisions (the partial index keeps finding those cheap);
 * - `router_decisions`: each routed decision a run made (key: the gateway request's idempotency
 *   key, `<run id>:<journal step id>`) with what the bandit needs to revise its reward on any node
 *   and after a restart: the feature vector, the decided and served tiers, the policy, and the
 *   outcome so far (validation, repairs, cost, feedback). Nodes write them in batches when they
 *   flush their router state.
 * The `policy` row of `router_state` now holds additive sums (LinUCB's A and b, counters), which
 * nodes merge into; earlier rows (A⁻¹) are not readable as sums and are replaced.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { tenantOwned } from "./tenantOwned.js"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient

  yield* sql`DELETE FROM router_state WHERE name = 'policy'`

  yield* sql`
    CREATE TABLE run_feedback (
      tenant_id text NOT NULL,
      run_id text NOT NULL,
      rating smallint NOT NULL CHECK (rating IN (1, -1)),
      comment text,
      pending boolean NOT NULL DEFAULT true,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (tenant_id, run_id),
      FOREIGN KEY (tenant_id, run_id) REFERENCES agent_runs(tenant_id, id) ON DELETE CASCADE
    )`
  yield* sql`CREATE INDEX run_feedback_pending ON run_feedback (tenant_id) WHERE pending`
  yield* tenantOwned(sql, "run_feedback")

  yield* sql`
    CREATE TABLE router_decisions (
      tenant_id text NOT NULL,
      key text NOT NULL,
      run_id text NOT NULL,
      decided text NOT NULL CHECK (decided IN ('SLM_A', 'SLM_B', 'LLM')),
      tier text NOT NULL CHECK (tier IN ('SLM_A', 'SLM_B', 'LLM')),
      policy text NOT NULL CHECK (policy IN ('control', 'canary')),
      canary_id text,
      features jsonb NOT NULL,
      passed boolean NOT NULL,
      answered boolean NOT NULL,
      repairs integer NOT NULL,
      cost_usd double precision NOT NULL,
      validated boolean NOT NULL DEFAULT false,
      feedback smallint,
      created_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (tenant_id, key)
    )`
  yield* sql`CREATE INDEX router_decisions_run ON router_decisions (tenant_id, run_id)`
  yield* tenantOwned(sql, "router_decisions")
})
