/**
 * Behaviour of the Run host (one partition of a tenant's runs, see the domain's RunEntity).
 *
 * `Start` loads the run's journal (JournalReader groups concurrent loads) and executes its
 * workflow (WorkflowExecutor, on the plans of WorkflowPlans) from its first unjournaled step in a
 * fiber of the host's, answering as soon as the run is under way; a `Start` that carries the run
 * its caller has just recorded (`requested`) skips the load. `Start` is
 * idempotent: a run already under way here, or finished, is left alone, so the recovery scan
 * (RunRecovery) can wake any unfinished run on whichever runner now owns its partition; a step
 * that another activation journaled first is never finished twice (see RunJournal). A host is
 * not passivated under its runs: its idle time starts after its last message, and a run that
 * outlives `holdAfter` makes it hold a `Hold` message to itself until its runs have ended. `Signal` stores a signal in `run_signals` and wakes the run's `wait` step if it is
 * waiting for it. `Cancel` ends the run in the journal and interrupts its execution.
 *
 * A finished run gives its slot back to the tenant (RunSlots: one `RecordUsage` in flight per
 * tenant for all the hosts of the runner, carrying the runs finished meanwhile).
 */
import { Entity } from "@effect/cluster"
import type { Sharding } from "@effect/cluster/Sharding"
import type * as SqlClient from "@effect/sql/SqlClient"
import { RunNotFound } from "@tessera/domain/Errors"
import { RunId, TenantId } from "@tessera/domain/Ids"
import { unfinished } from "@tessera/domain/Run"
import { RunEntity } from "@tessera/domain/RunEntity"
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Runtime from "effect/Runtime"
import * as Scope from "effect/Scope"
import { Database } from "./Database.js"
import { activations } from "./EntityMetrics.js"
import { decodeRun } from "./internal/rows.js"
import { splitEntityId } from "./internal/entityId.js"
import { storageError } from "./internal/storage.js"
import * as JournalReader from "./JournalReader.js"
import * as JournalWriter from "./JournalWriter.js"
import * as RunJournal from "./RunJournal.js"
import { layer as RunSlotsLayer, RunSlots } from "./RunSlots.js"
import type { ToolRegistry } from "./ToolRegistry.js"
import * as WorkflowExecutor from "./WorkflowExecutor.js"
import type { WorkflowPlans } from "./WorkflowPlans.js"

const runsFinished = Metric.counter("tessera_runs_finished_total", {
  description: "Runs that reached a terminal status on this runner"
})

/** The counter per terminal status, tagged once (tagging per run costs more than the increment). */
const finishedWith = {
  completed: Metric.increment(Metric.tagged(runsFinished, "status", "completed")),
  failed: Metric.increment(Metric.tagged(runsFinished, "status", "failed")),
  compensated: Metric.increment(Metric.tagged(runsFinished, "status", "compensated")),
  cancelled: Metric.increment(Metric.tagged(runsFinished, "status", "cancelled"))
} as const

/**
 * A host with a run in flight this long holds itself with `Hold` (shorter runs are covered by the
 * host's idle time, which starts after its last message). Well under the host's `maxIdleTime`.
 */
const holdAfter = "10 seconds"

/** Consecutive failed executions (storage down, a step failing) after which a run is marked failed. */
const maxFailures = 5

/** A run under way on this host. */
interface Hosted {
  /** Set once its journal is loaded and its execution forked. */
  fiber: Fiber.RuntimeFiber<void> | undefined
  /** Signals its `wait` steps are waiting for (or that arrived first), by name. */
  readonly signals: Map<string, Deferred.Deferred<unknown>>
}

/** `WORKFLOW_MAX_STEPS` (default 200): steps one run may execute, sub-workflows included. */
export const layer: Layer.Layer<
  never,
  never,
  Database | SqlClient.SqlClient | Sharding | ToolRegistry | WorkflowPlans
> = Layer.unwrapEffect(Effect.gen(function*() {
  const maxSteps = yield* Config.integer("WORKFLOW_MAX_STEPS").pipe(
    Config.withDefault(WorkflowExecutor.defaultSettings.maxSteps),
    Effect.orDie
  )
  return RunEntity.toLayer(
    Effect.gen(function*() {
      const address = yield* Entity.CurrentAddress
      const runner = yield* Entity.CurrentRunnerAddress
      const tenantId = TenantId.make(splitEntityId(address.entityId).tenantId)
      const scope = yield* Scope.Scope
      const slots = yield* RunSlots
      const self = (yield* RunEntity.client)(address.entityId)
      const db = yield* Database
      const reader = yield* JournalReader.JournalReader
      // Runs execute on the host's runtime (its services, clock and logger), in fibers of their
      // own rather than children of the `Start` that began them: a child would carry the
      // handler's request context through every step of the run.
      const runtime = yield* Effect.runtime<Database | JournalWriter.JournalWriter | ToolRegistry | WorkflowPlans>()
      yield* Metric.increment(activations("Run"))

      const hosted = new Map<string, Hosted>()
      // A host that stops (passivation, its partition moving to another runner) stops its runs;
      // their new host resumes them from the journal.
      yield* Scope.addFinalizer(
        scope,
        Effect.forEach(hosted.values(), (run) => run.fiber === undefined ? Effect.void : Fiber.interrupt(run.fiber), { discard: true })
      )
      /** Consecutive failed executions of runs that are still unfinished. */
      const failures = new Map<string, number>()
      /** Open while no run is in flight; `Hold` waits on it. */
      const idle = yield* Effect.makeLatch(true)
      /** Open while runs are in flight. */
      const busy = yield* Effect.makeLatch(false)
      // Holds the host while a run outlives `holdAfter` (a `wait` step, a slow tool).
      yield* Effect.gen(function*() {
        while (true) {
          yield* busy.await
          yield* Effect.sleep(holdAfter)
          if (hosted.size > 0) yield* Effect.ignore(self.Hold())
        }
      }).pipe(Effect.forkIn(scope))

      const annotate = (runId: string) => Effect.annotateLogs({ tenant_id: tenantId, run_id: runId })

      const releaseSlot = slots.release(tenantId)

      const signalOf = (run: Hosted, name: string) => {
        let deferred = run.signals.get(name)
        if (deferred === undefined) {
          deferred = Deferred.unsafeMake<unknown>(FiberId.none)
          run.signals.set(name, deferred)
        }
        return deferred
      }

      const hostOf = (runId: string, run: Hosted): WorkflowExecutor.Host => ({
        runner: `${runner.host}:${runner.port}`,
        awaitSignal: (name) =>
          Effect.gen(function*() {
            const deferred = signalOf(run, name)
            const stored = yield* db.tenant(tenantId)(db.sql<{ payload: unknown }>`SELECT payload FROM run_signals
              WHERE tenant_id = ${tenantId} AND run_id = ${runId} AND name = ${name}`)
            if (stored[0] !== undefined) return stored[0].payload
            return yield* Deferred.await(deferred)
          })
      })

      const failed = (journal: RunJournal.Journal, cause: Cause.Cause<unknown>) => {
        const runId = journal.run.id
        const count = (failures.get(runId) ?? 0) + 1
        if (count < maxFailures) {
          failures.set(runId, count)
          // The run stays unfinished in the journal; the recovery scan wakes it again.
          return Effect.logWarning(`run execution failed (${count}/${maxFailures}); recovery will retry`, cause)
        }
        failures.delete(runId)
        const reason = Cause.pretty(cause).split("\n")[0] ?? "execution failed"
        return RunJournal.finish(journal.run, "failed", reason).pipe(
          Effect.flatMap((marked) =>
            marked ? Effect.zipRight(finishedWith.failed, releaseSlot) : Effect.void
          ),
          Effect.zipRight(Effect.logError(`run failed after ${maxFailures} attempts`, cause)),
          Effect.catchAllCause((again) => Effect.logError("could not mark the run failed", again))
        )
      }

      const execute = (journal: RunJournal.Journal, run: Hosted) =>
        WorkflowExecutor.execute(journal, hostOf(journal.run.id, run), { maxSteps }).pipe(
          Effect.flatMap((ended) => {
            failures.delete(journal.run.id)
            return Effect.zipRight(finishedWith[ended], releaseSlot)
          }),
          // Another activation journaled under us: the journal is authoritative, nothing to redo.
          Effect.catchTag("JournalConflict", () => Effect.logDebug("run journal moved under this activation")),
          Effect.catchAllCause((cause) => Cause.isInterruptedOnly(cause) ? Effect.void : failed(journal, cause))
        )

      /** The run is no longer under way here. */
      const release = (runId: string) =>
        Effect.suspend(() => {
          hosted.delete(runId)
          if (hosted.size > 0) return Effect.void
          busy.unsafeClose()
          return idle.open
        })

      /** Claims the run on this host (synchronously, so a concurrent `Start` of it does nothing). */
      const claim = (runId: string): Hosted | undefined => {
        if (hosted.has(runId)) return undefined
        const run: Hosted = { fiber: undefined, signals: new Map() }
        hosted.set(runId, run)
        if (hosted.size === 1) {
          idle.unsafeClose()
          busy.unsafeOpen()
        }
        return run
      }

      const status = (runId: RunId) =>
        Effect.gen(function*() {
          const journal = yield* RunJournal.load(tenantId, runId)
          if (journal === undefined) return yield* new RunNotFound({ runId })
          return yield* decodeRun(journal.run, journal.steps)
        })

      return RunEntity.of({
        Start: ({ payload: { requested, runId } }) =>
          Effect.suspend(() => {
            const run = claim(runId)
            if (run === undefined) return Effect.void
            return Effect.gen(function*() {
              // Only the caller that recorded the run passes `requested`, before anyone else knows
              // its id; should the journal have moved on anyway, the first step's statement finds
              // it so and the execution stops (JournalConflict).
              const journal = requested === undefined
                ? yield* reader.load(tenantId, runId)
                : RunJournal.requested(tenantId, runId, requested)
              if (journal === undefined) return yield* new RunNotFound({ runId })
              if (!unfinished.includes(journal.run.status)) return yield* release(runId)
              // The run belongs to the host, not to the caller: `Start` answers now.
              run.fiber = Runtime.runFork(runtime)(execute(journal, run).pipe(Effect.ensuring(release(runId)), annotate(runId)))
            }).pipe(Effect.onError(() => release(runId)))
          }).pipe(Effect.catchTag("SqlError", storageError("run.start")), annotate(runId)),

        Hold: () =>
          Effect.gen(function*() {
            while (hosted.size > 0) yield* idle.await
          }),

        Status: ({ payload: { runId } }) => status(runId).pipe(Effect.catchTag("SqlError", storageError("run.status")), annotate(runId)),

        Cancel: ({ payload: { runId, reason } }) =>
          Effect.gen(function*() {
            const journal = yield* RunJournal.load(tenantId, runId)
            if (journal === undefined) return yield* new RunNotFound({ runId })
            const cancelled = yield* RunJournal.finish(journal.run, "cancelled", reason)
            if (cancelled) {
              const fiber = hosted.get(runId)?.fiber
              if (fiber !== undefined) yield* Fiber.interrupt(fiber)
              failures.delete(runId)
              yield* finishedWith.cancelled
              yield* releaseSlot
            }
            return yield* status(runId)
          }).pipe(Effect.catchTag("SqlError", storageError("run.cancel")), annotate(runId)),

        Signal: ({ payload: { name, payload, runId } }) =>
          Effect.gen(function*() {
            const stored = yield* db.tenant(tenantId)(db.sql`INSERT INTO run_signals (tenant_id, run_id, name, payload)
              SELECT tenant_id, id, ${name}, ${JSON.stringify(payload ?? null)}::jsonb FROM agent_runs
              WHERE tenant_id = ${tenantId} AND id = ${runId}
              ON CONFLICT DO NOTHING RETURNING name`)
            if (stored.length === 0) {
              const exists = yield* RunJournal.load(tenantId, runId)
              if (exists === undefined) return yield* new RunNotFound({ runId })
              return
            }
            // A run not under way here reads the stored signal when its `wait` step starts.
            const run = hosted.get(runId)
            if (run !== undefined) yield* Deferred.succeed(signalOf(run, name), payload ?? null)
          }).pipe(Effect.catchTag("SqlError", storageError("run.signal")), annotate(runId))
      })
    }),
    { concurrency: "unbounded", maxIdleTime: "1 minute" }
  ).pipe(Layer.provide([JournalReader.layer, JournalWriter.layer, RunSlotsLayer]))
}))
