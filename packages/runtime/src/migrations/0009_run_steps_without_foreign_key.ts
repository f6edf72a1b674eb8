/**
 * `run_steps` loses its foreign key to `agent_runs`. The only writer of steps is
 * `journal_append_steps` (migration 0008), which first updates the run row or share-locks it in
 * the same transaction, so a step never exists without its run; and no run is ever deleted. The
 * key's check ran on every step again: a `FOR KEY SHARE` lock on the run row, ≈ a quarter of the
 * journal's Postgres time in bench:workflows (pg_stat_statements, nested statements tracked),
 * spent on the pages where new runs are being inserted. A job that comes to delete runs must
 * delete their steps with them.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE run_steps DROP CONSTRAINT run_steps_tenant_id_run_id_fkey`
})
