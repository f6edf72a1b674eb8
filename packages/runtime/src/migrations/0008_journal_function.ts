/**
 * The run journal's write path, which every step of every run takes.
 *
 * - `journal_append_steps(steps jsonb)`: what RunJournal.appendSteps did in one statement of six
 *   common table expressions, as a function. A batch's statement was planned anew each time
 *   (≈ 0.5 ms of Postgres CPU, more than executing it), and with the planner's fixed estimate of
 *   100 input rows it joined the batch to every unfinished run (and, with fresh statistics, probed
 *   run steps through the tenant index). The function's statements are planned once per
 *   connection (the journal holds its connections) and each reaches its rows by primary key.
 *   Security invoker: it runs with the caller's rights and row-level security (the system role).
 * - `run_steps` and `outbox` lose their `(tenant_id, created_at)` index: nothing reads either by
 *   tenant and time (steps are read by run through the primary key, the relay reads the outbox by
 *   `seq`), yet every step paid an entry in each per row. Row-level security stays as it was.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`DROP INDEX run_steps_tenant_created`
  yield* sql`DROP INDEX outbox_tenant_created`
  yield* sql.unsafe(`
    CREATE FUNCTION journal_append_steps(steps jsonb) RETURNS TABLE (tenant_id text, run_id text)
    LANGUAGE plpgsql SECURITY INVOKER AS $fn$
    DECLARE
      s record;
    BEGIN
      FOR s IN SELECT * FROM jsonb_to_recordset(steps) AS i(
          tenant_id text, run_id text, step_id text, seq integer, kind text, status text, output jsonb,
          started_at timestamptz, finished_at timestamptz, next_step text, outcome text, tier text, tokens integer,
          cost_usd numeric, attempts integer, error text, first boolean, end_status text, end_output jsonb,
          end_error text, runner text, events jsonb)
      LOOP
        PERFORM 1 FROM run_steps r WHERE r.tenant_id = s.tenant_id AND r.run_id = s.run_id AND r.step_id = s.step_id;
        CONTINUE WHEN FOUND;
        IF s.first OR s.end_status IS NOT NULL THEN
          UPDATE agent_runs r SET
            status = coalesce(s.end_status, 'started'),
            attempts = r.attempts + CASE WHEN s.first THEN 1 ELSE 0 END,
            runner = s.runner,
            output = CASE WHEN s.end_status IS NOT NULL THEN s.end_output ELSE r.output END,
            error = CASE WHEN s.end_status IS NOT NULL THEN s.end_error ELSE r.error END,
            finished_at = CASE WHEN s.end_status IS NOT NULL THEN now() ELSE r.finished_at END,
            updated_at = now()
          WHERE r.tenant_id = s.tenant_id AND r.id = s.run_id AND r.status IN ('requested', 'started');
        ELSE
          PERFORM 1 FROM agent_runs r
          WHERE r.tenant_id = s.tenant_id AND r.id = s.run_id AND r.status IN ('requested', 'started')
          FOR SHARE;
        END IF;
        CONTINUE WHEN NOT FOUND;
        INSERT INTO run_steps (tenant_id, run_id, step_id, seq, kind, status, output, started_at, finished_at,
          next_step, outcome, tier, tokens, cost_usd, attempts, error)
        VALUES (s.tenant_id, s.run_id, s.step_id, s.seq, s.kind, s.status, s.output, s.started_at, s.finished_at,
          s.next_step, s.outcome, s.tier, s.tokens, s.cost_usd, s.attempts, s.error)
        ON CONFLICT DO NOTHING;
        CONTINUE WHEN NOT FOUND;
        INSERT INTO outbox (tenant_id, event_id, subject, envelope)
        SELECT s.tenant_id, e.event_id, e.subject, e.envelope
        FROM jsonb_to_recordset(s.events) AS e(event_id text, subject text, envelope jsonb)
        ON CONFLICT (event_id) DO NOTHING;
        tenant_id := s.tenant_id;
        run_id := s.run_id;
        RETURN NEXT;
      END LOOP;
    END
    $fn$`)
})
