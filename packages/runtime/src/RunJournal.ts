/**
 * A run's journal: the `agent_runs` row and one `run_steps` row per finished step, each written
 * in one transaction with its outbox events. To save round trips the run's `started` transition
 * is folded into its first step's transaction and its completion into the last step's, so a
 * one-step run costs one transaction after the request. A step row is written once (primary key
 * run + step): a second writer finds it taken and re-reads the journal instead of finishing the
 * run twice.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { EventEnvelope, type EventType } from "@tessera/domain/Event"
import type { RunStatus } from "@tessera/domain/Run"
import * as Data from "effect/Data"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import { Database } from "./Database.js"
import type { RunRow, StepRow } from "./internal/rows.js"
import * as Outbox from "./Outbox.js"

/** The step was already journaled, or the run left the unfinished states, under us. */
export class JournalConflict extends Data.TaggedError("JournalConflict")<{ readonly runId: string }> {}

export interface Journal {
  readonly run: RunRow
  readonly steps: ReadonlyArray<StepRow>
}

export const event = (run: RunRow, type: EventType, payload: unknown, suffix: string = type): EventEnvelope =>
  new EventEnvelope({
    event_type: type,
    event_id: `${run.tenant_id}:${run.id}:${suffix}`,
    timestamp: DateTime.unsafeNow(),
    tenant_id: run.tenant_id,
    user_id: run.user_id,
    run_id: run.id,
    workflow: run.workflow,
    tier: null,
    metadata: {},
    payload
  })

/** The run row and its steps in one statement. */
export const load = (tenantId: string, runId: string): Effect.Effect<Journal | undefined, SqlError, Database> =>
  Effect.flatMap(Database, (db) =>
    db.tenant(tenantId)(db.sql<RunRow & { readonly steps: ReadonlyArray<JsonStep> }>`
      SELECT r.*, coalesce((
        SELECT json_agg(json_build_object('step_id', s.step_id, 'seq', s.seq, 'kind', s.kind, 'status', s.status,
          'output', s.output, 'started_at', s.started_at, 'finished_at', s.finished_at) ORDER BY s.seq)
        FROM run_steps s WHERE s.tenant_id = r.tenant_id AND s.run_id = r.id), '[]') AS steps
      FROM agent_runs r WHERE r.tenant_id = ${tenantId} AND r.id = ${runId}`)
  ).pipe(Effect.map((rows) => {
    const row = rows[0]
    if (row === undefined) return undefined
    const { steps, ...run } = row
    return {
      run,
      steps: steps.map((step) => ({ ...step, started_at: new Date(step.started_at), finished_at: new Date(step.finished_at) }))
    }
  }))

interface JsonStep extends Omit<StepRow, "started_at" | "finished_at"> {
  readonly started_at: string
  readonly finished_at: string
}

export interface StepWrite {
  readonly stepId: string
  readonly seq: number
  readonly kind: string
  readonly output: unknown
  readonly startedAt: Date
  readonly finishedAt: Date
  /** First step this activation writes: also moves the run to `started`. */
  readonly first: boolean
  /** Last step of the plan: also completes the run with this output. */
  readonly last: boolean
  /** The runner executing the step (`host:port`), recorded on the run. */
  readonly runner: string
}

/**
 * Journals one finished step with its events, in one statement: the run row's transition (to
 * `started` on this activation's first step, to `completed` with the output on the plan's last),
 * the step row and the outbox rows. A step row that exists already, or a run that left the
 * unfinished states, fails the transaction with JournalConflict, so nothing of it commits.
 */
export const appendStep = (run: RunRow, step: StepWrite): Effect.Effect<void, SqlError | JournalConflict, Database> =>
  Effect.flatMap(Database, ({ sql, tenant }) => {
    const events: Array<EventEnvelope> = []
    if (step.first && run.status === "requested") {
      events.push(event(run, "agent.run.started", { attempt: run.attempts + 1 }))
    }
    if (step.last) events.push(event(run, "agent.run.completed", { output: step.output }))
    const output = JSON.stringify(step.output)
    const outbox = events.length === 0
      ? sql`SELECT 0`
      : sql`INSERT INTO outbox ${sql.insert(events.map(Outbox.row))} ON CONFLICT (event_id) DO NOTHING`
    return tenant(run.tenant_id)(sql<{ runs: string; steps: string }>`
      WITH run AS (
        UPDATE agent_runs SET
          status = ${step.last ? "completed" : "started"},
          attempts = attempts + ${step.first ? 1 : 0},
          runner = ${step.runner},
          output = CASE WHEN ${step.last} THEN ${output}::jsonb ELSE output END,
          finished_at = CASE WHEN ${step.last} THEN now() ELSE finished_at END,
          updated_at = now()
        WHERE tenant_id = ${run.tenant_id} AND id = ${run.id} AND status IN ('requested', 'started')
        RETURNING id
      ), step AS (
        INSERT INTO run_steps ${
      sql.insert({
        tenant_id: run.tenant_id,
        run_id: run.id,
        step_id: step.stepId,
        seq: step.seq,
        kind: step.kind,
        status: "completed",
        output,
        started_at: step.startedAt,
        finished_at: step.finishedAt
      })
    } ON CONFLICT DO NOTHING RETURNING step_id
      ), events AS (${outbox})
      SELECT (SELECT count(*) FROM run) AS runs, (SELECT count(*) FROM step) AS steps`.pipe(
      Effect.flatMap((rows) =>
        Number(rows[0]?.runs) === 1 && Number(rows[0]?.steps) === 1
          ? Effect.void
          : Effect.fail(new JournalConflict({ runId: run.id }))
      )
    ))
  })

/** Moves an unfinished run to a terminal status with its event; false when it was already finished. */
export const finish = (
  run: RunRow,
  status: Extract<RunStatus, "failed" | "cancelled">,
  reason: string
): Effect.Effect<boolean, SqlError, Database> =>
  Effect.flatMap(Database, ({ sql, tenant }) =>
    tenant(run.tenant_id)(Effect.gen(function*() {
      const updated = yield* sql`UPDATE agent_runs SET status = ${status}, error = ${reason}, updated_at = now(), finished_at = now()
        WHERE tenant_id = ${run.tenant_id} AND id = ${run.id} AND status IN ('requested', 'started') RETURNING id`
      if (updated.length === 0) return false
      yield* Outbox.append([event(run, status === "failed" ? "agent.run.failed" : "agent.run.cancelled", { reason })])
      return true
    }))
  ).pipe(Effect.provideServiceEffect(SqlClient.SqlClient, Effect.map(Database, (db) => db.sql)))
