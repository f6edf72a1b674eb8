/**
 * A run's journal: the `agent_runs` row and one `run_steps` row per finished step (completed or
 * failed, compensations included), each written in one statement with its outbox events
 * (`appendSteps`, which JournalWriter group-commits across concurrent runs). To save
 * round trips the run's `started` transition is folded into its first step's statement and its
 * end (completed, failed or compensated, with the output or error) into the last step's, so a
 * one-step run costs one statement after the request. A step row is written once (primary key
 * run + step): a second writer finds it taken and re-reads the journal instead of finishing the
 * run twice.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type { EventEnvelope, EventType } from "@tessera/domain/Event"
import type { RunStatus } from "@tessera/domain/Run"
import type { RequestedRun } from "@tessera/domain/RunEntity"
import * as Data from "effect/Data"
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

/**
 * An event of the run, in its JSON form (`EventEnvelope`'s encoding, typed by it): what the outbox
 * stores. Built as such rather than as an `EventEnvelope` to encode again: a run writes several
 * per step.
 */
export const event = (run: RunRow, type: EventType, payload: unknown, suffix: string = type): typeof EventEnvelope.Encoded => ({
  event_type: type,
  event_id: `${run.tenant_id}:${run.id}:${suffix}`,
  timestamp: new Date().toISOString(),
  tenant_id: run.tenant_id,
  user_id: run.user_id,
  run_id: run.id,
  workflow: run.workflow,
  tier: null,
  metadata: {},
  payload
})

type JournalRow = RunRow & { readonly steps: ReadonlyArray<JsonStep> }

const journalColumns = `r.*, coalesce((
  SELECT json_agg(json_build_object('step_id', s.step_id, 'seq', s.seq, 'kind', s.kind, 'status', s.status,
    'output', s.output, 'started_at', s.started_at, 'finished_at', s.finished_at, 'next_step', s.next_step,
    'outcome', s.outcome, 'error', s.error, 'tier', s.tier, 'tokens', s.tokens, 'cost_usd', s.cost_usd) ORDER BY s.seq)
  FROM run_steps s WHERE s.tenant_id = r.tenant_id AND s.run_id = r.id), '[]') AS steps`

const toJournal = ({ steps, ...run }: JournalRow): Journal => ({
  run,
  steps: steps.map((step) => ({
    ...step,
    started_at: new Date(step.started_at),
    finished_at: new Date(step.finished_at),
    cost_usd: Number(step.cost_usd)
  }))
})

/** The journal of a run as its caller records it: the `requested` row, no steps. */
export const requested = (tenantId: string, runId: string, run: RequestedRun): Journal => {
  const now = new Date()
  return {
    run: {
      tenant_id: tenantId,
      id: runId,
      session_id: run.sessionId,
      user_id: run.userId,
      workflow: run.workflow,
      status: "requested",
      input: run.input,
      output: null,
      error: null,
      attempts: 0,
      created_at: now,
      updated_at: now
    },
    steps: []
  }
}

/** The run row and its steps in one statement, in the tenant's transaction. */
export const load = (tenantId: string, runId: string): Effect.Effect<Journal | undefined, SqlError, Database> =>
  Effect.flatMap(Database, (db) =>
    db.tenant(tenantId)(db.sql<JournalRow>`SELECT ${db.sql.literal(journalColumns)}
      FROM agent_runs r WHERE r.tenant_id = ${tenantId} AND r.id = ${runId}`)
  ).pipe(Effect.map((rows) => rows[0] === undefined ? undefined : toJournal(rows[0])))

/**
 * The journals of several runs (of any tenants) in one statement, inside the caller's
 * transaction (JournalReader runs it as `Database.system`), keyed by `journalKey`.
 */
export const loadMany = (
  keys: ReadonlyArray<{ readonly tenantId: string; readonly runId: string }>
): Effect.Effect<ReadonlyMap<string, Journal>, SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    // The LIMIT tells the planner how many keys there are (it assumes 100 rows from a function and
    // then scanned every run instead of looking each up by primary key).
    sql<JournalRow>`SELECT ${sql.literal(journalColumns)}
      FROM (SELECT * FROM jsonb_to_recordset(${JSON.stringify(keys.map((k) => ({ tenant_id: k.tenantId, id: k.runId })))}::jsonb)
        AS k(tenant_id text, id text) LIMIT ${keys.length}) AS k
      JOIN agent_runs r ON r.tenant_id = k.tenant_id AND r.id = k.id`.pipe(
      Effect.map((rows) => new Map(rows.map((row) => [journalKey(row.tenant_id, row.id), toJournal(row)])))
    ))

interface JsonStep extends Omit<StepRow, "started_at" | "finished_at" | "cost_usd"> {
  readonly started_at: string
  readonly finished_at: string
  readonly cost_usd: number | string
}

/** How a run ends, written with its last step. */
export interface RunEnd {
  readonly status: Extract<RunStatus, "completed" | "failed" | "compensated">
  readonly output: unknown
  readonly error: string | null
}

export interface StepWrite {
  readonly stepId: string
  readonly seq: number
  readonly kind: string
  readonly status: "completed" | "failed"
  readonly output: unknown
  readonly startedAt: Date
  readonly finishedAt: Date
  readonly next: string | null
  readonly outcome: string
  readonly tier: string | null
  readonly tokens: number
  readonly costUsd: number
  readonly attempts: number
  readonly error: string | null
  /** The step's own events (tool.call.*), written with it. */
  readonly events: ReadonlyArray<typeof EventEnvelope.Encoded>
  /** First step this activation writes: also moves the run to `started`. */
  readonly first: boolean
  /** Set on the run's last step: also ends the run. */
  readonly end: RunEnd | undefined
  /** The runner executing the step (`host:port`), recorded on the run. */
  readonly runner: string
}

const endEvent = (run: RunRow, end: RunEnd): typeof EventEnvelope.Encoded =>
  end.status === "completed"
    ? event(run, "agent.run.completed", { output: end.output })
    : event(run, "agent.run.failed", { reason: end.error, compensated: end.status === "compensated" })

/** How appendSteps names a journaled run. */
export const journalKey = (tenantId: string, runId: string): string => `${tenantId}/${runId}`

export interface Append {
  readonly run: RunRow
  readonly step: StepWrite
}

/**
 * Journals finished steps (at most one per run, of any tenants) with their events, in one
 * statement, inside the caller's transaction — JournalWriter runs it as the system role, the
 * journal being infrastructure shared by the tenants' runs (migration 0003 grants the system role
 * exactly this); every row carries its run's tenant and is matched on it. The statement calls
 * `journal_append_steps` (migration 0008), which per step, by primary key: skips a step whose row
 * exists; moves the run row (to `started` on its activation's first step, to its end status with
 * the output on its last) — a step in between leaves the row as it is and only holds it with a
 * share lock, which orders it with a concurrent Cancel; skips the step if the run left the
 * unfinished states; inserts the step row and its outbox rows. It answers the `tenant/run` keys
 * it journaled.
 */
export const appendSteps = (
  appends: ReadonlyArray<Append>
): Effect.Effect<ReadonlySet<string>, SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => {
    const rows = appends.map(({ run, step }) => {
      const events: Array<typeof EventEnvelope.Encoded> = []
      if (step.first && run.status === "requested") events.push(event(run, "agent.run.started", { attempt: run.attempts + 1 }))
      events.push(...step.events)
      if (step.end !== undefined) events.push(endEvent(run, step.end))
      return {
        tenant_id: run.tenant_id,
        run_id: run.id,
        step_id: step.stepId,
        seq: step.seq,
        kind: step.kind,
        status: step.status,
        output: step.output ?? null,
        started_at: step.startedAt.toISOString(),
        finished_at: step.finishedAt.toISOString(),
        next_step: step.next,
        outcome: step.outcome,
        tier: step.tier,
        tokens: step.tokens,
        cost_usd: step.costUsd,
        attempts: step.attempts,
        error: step.error,
        first: step.first,
        end_status: step.end?.status ?? null,
        end_output: step.end?.output ?? null,
        end_error: step.end?.error ?? null,
        runner: step.runner,
        events: events.map((e) => ({ event_id: e.event_id, subject: e.event_type, envelope: e }))
      }
    })
    return sql<{ tenant_id: string; run_id: string }>`SELECT tenant_id, run_id FROM journal_append_steps(${JSON.stringify(rows)}::jsonb)`.pipe(
      Effect.map((written) => new Set(written.map((w) => journalKey(w.tenant_id, w.run_id))))
    )
  })

/** Moves an unfinished run to a terminal status with its event; false when it was already finished. */
export const finish = (
  run: RunRow,
  status: Extract<RunStatus, "failed" | "cancelled" | "compensated">,
  reason: string
): Effect.Effect<boolean, SqlError, Database> =>
  Effect.flatMap(Database, ({ sql, tenant }) =>
    tenant(run.tenant_id)(Effect.gen(function*() {
      const updated = yield* sql`UPDATE agent_runs SET status = ${status}, error = ${reason}, updated_at = now(), finished_at = now()
        WHERE tenant_id = ${run.tenant_id} AND id = ${run.id} AND status IN ('requested', 'started') RETURNING id`
      if (updated.length === 0) return false
      yield* Outbox.append([
        status === "cancelled"
          ? event(run, "agent.run.cancelled", { reason })
          : endEvent(run, { status, output: null, error: reason })
      ])
      return true
    }))
  ).pipe(Effect.provideServiceEffect(SqlClient.SqlClient, Effect.map(Database, (db) => db.sql)))
