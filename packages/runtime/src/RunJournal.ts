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

export const load = (tenantId: string, runId: string): Effect.Effect<Journal | undefined, SqlError, Database> =>
  Effect.flatMap(Database, (db) =>
    db.tenant(tenantId)(Effect.all({
      runs: db.sql<RunRow>`SELECT * FROM agent_runs WHERE tenant_id = ${tenantId} AND id = ${runId}`,
      steps: db.sql<StepRow>`SELECT step_id, seq, kind, status, output, started_at, finished_at
        FROM run_steps WHERE tenant_id = ${tenantId} AND run_id = ${runId} ORDER BY seq`
    })).pipe(Effect.map(({ runs, steps }) => runs[0] === undefined ? undefined : { run: runs[0], steps })))

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

/** Journals one finished step with its events; folds the run's start and completion in. */
export const appendStep = (run: RunRow, step: StepWrite): Effect.Effect<void, SqlError | JournalConflict, Database> =>
  Effect.flatMap(Database, ({ sql, tenant }) =>
    tenant(run.tenant_id)(Effect.gen(function*() {
      const events: Array<EventEnvelope> = []
      if (step.first) {
        const started = yield* sql`UPDATE agent_runs SET status = 'started', attempts = attempts + 1, runner = ${step.runner}, updated_at = now()
          WHERE tenant_id = ${run.tenant_id} AND id = ${run.id} AND status IN ('requested', 'started') RETURNING status`
        if (started.length === 0) return yield* new JournalConflict({ runId: run.id })
        if (run.status === "requested") events.push(event(run, "agent.run.started", { attempt: run.attempts + 1 }))
      }
      const inserted = yield* sql`INSERT INTO run_steps ${
        sql.insert({
          tenant_id: run.tenant_id,
          run_id: run.id,
          step_id: step.stepId,
          seq: step.seq,
          kind: step.kind,
          status: "completed",
          output: JSON.stringify(step.output),
          started_at: step.startedAt,
          finished_at: step.finishedAt
        })
      } ON CONFLICT DO NOTHING RETURNING step_id`
      if (inserted.length === 0) return yield* new JournalConflict({ runId: run.id })
      if (step.last) {
        const completed = yield* sql`UPDATE agent_runs SET status = 'completed', output = ${JSON.stringify(step.output)},
            updated_at = now(), finished_at = now()
          WHERE tenant_id = ${run.tenant_id} AND id = ${run.id} AND status IN ('requested', 'started') RETURNING id`
        if (completed.length === 0) return yield* new JournalConflict({ runId: run.id })
        events.push(event(run, "agent.run.completed", { output: step.output }))
      } else if (!step.first) {
        yield* sql`UPDATE agent_runs SET updated_at = now() WHERE tenant_id = ${run.tenant_id} AND id = ${run.id}`
      }
      yield* Outbox.append(events)
    }))
  ).pipe(Effect.provideServiceEffect(SqlClient.SqlClient, Effect.map(Database, (db) => db.sql)))

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
