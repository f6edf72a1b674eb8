/**
 * Fewer writes per run, where runs are busiest (pg_stat_statements in bench:workflows, nested
 * statements tracked):
 *
 * - `run_steps` loses its foreign key to `agent_runs`. The only writer of steps is
 *   `journal_append_steps` (migration 0008), which first updates the run row or share-locks it in
 *   the same transaction, so a step never exists without its run, and no run is ever deleted (a
 *   job that comes to delete runs must delete their steps with them). The key's check took a
 *   `FOR KEY SHARE` lock on the run row for every step: ≈ a quarter of the journal's Postgres time,
 *   spent on the pages where new runs are being inserted.
 * - `agent_runs` loses its `(tenant_id, created_at)` index: no query reads runs by tenant and time
 *   (a run is read by its primary key, the recovery scan through `agent_runs_unfinished`), yet a
 *   run's insert and both of its status updates (neither can be a HOT update) added an entry at
 *   the tenant's end of it, where the tenant's concurrent new runs were adding theirs.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE run_steps DROP CONSTRAINT run_steps_tenant_id_run_id_fkey`
  yield* sql`DROP INDEX agent_runs_tenant_created`
})
