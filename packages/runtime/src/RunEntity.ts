/**
 * Behaviour of the Run actor: `Start` replays the journal and executes the plan from its first
 * unjournaled step in the entity's own scope, answering as soon as the run is under way. `Start`
 * is idempotent (a run already executing here, or finished, is left alone), so the recovery scan
 * (RunRecovery) can wake any unfinished run on whichever runner now owns its shard; a step that
 * another activation journaled first is never finished twice (see RunJournal).
 */
import { Entity } from "@effect/cluster"
import type { Sharding } from "@effect/cluster/Sharding"
import type * as SqlClient from "@effect/sql/SqlClient"
import { RunNotFound } from "@tessera/domain/Errors"
import { unfinished } from "@tessera/domain/Run"
import { RunEntity } from "@tessera/domain/RunEntity"
import { TenantEntity } from "@tessera/domain/TenantEntity"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import { Database } from "./Database.js"
import * as EchoWorkflow from "./EchoWorkflow.js"
import { activations } from "./EntityMetrics.js"
import { decodeRun } from "./internal/rows.js"
import { splitEntityId } from "./internal/entityId.js"
import { storageError } from "./internal/storage.js"
import * as RunJournal from "./RunJournal.js"

const runsFinished = Metric.counter("tessera_runs_finished_total", {
  description: "Runs that reached a terminal status on this runner"
})

/** The plan for a workflow name; until the workflow engine lands every run uses the echo workflow. */
const planFor = (_workflow: string): ReadonlyArray<EchoWorkflow.Step> => EchoWorkflow.steps


/** Consecutive failed executions (storage down, a step failing) after which a run is marked failed. */
const maxFailures = 5

export const layer: Layer.Layer<never, never, Database | SqlClient.SqlClient | Sharding> = RunEntity.toLayer(
  Effect.gen(function*() {
    const address = yield* Entity.CurrentAddress
    const runner = yield* Entity.CurrentRunnerAddress
    const { id: runId, tenantId } = splitEntityId(address.entityId)
    const tenants = yield* TenantEntity.client
    const self = (yield* RunEntity.client)(address.entityId)
    const starting = yield* Effect.makeSemaphore(1)
    // The journal `Start` read, handed to the `Execute` it sends; set while an execution is under way.
    let claimed: RunJournal.Journal | undefined
    let executing: Fiber.Fiber<void> | undefined
    let failures = 0
    yield* Metric.increment(activations("Run"))

    const releaseSlot = tenants(tenantId).RecordUsage({ tokens: 0, costUsd: 0, runFinished: true }).pipe(
      Effect.catchAllCause((cause) => Effect.logWarning("could not release the tenant's run slot", cause))
    )

    const execute = (journal: RunJournal.Journal) =>
      Effect.gen(function*() {
        const plan = planFor(journal.run.workflow)
        const done = new Set(journal.steps.map((s) => s.step_id))
        let first = true
        for (const [seq, step] of plan.entries()) {
          if (done.has(step.id)) continue
          const startedAt = new Date()
          const output = yield* step.execute(journal.run.input)
          yield* RunJournal.appendStep(journal.run, {
            stepId: step.id,
            seq,
            kind: step.kind,
            output,
            startedAt,
            finishedAt: new Date(),
            first,
            last: seq === plan.length - 1,
            runner: `${runner.host}:${runner.port}`
          })
          first = false
        }
        failures = 0
        yield* Metric.increment(Metric.tagged(runsFinished, "status", "completed"))
        yield* releaseSlot
      }).pipe(
        // Another activation journaled under us: the journal is authoritative, nothing to redo.
        Effect.catchTag("JournalConflict", () => Effect.logDebug("run journal moved under this activation")),
        Effect.catchAllCause((cause) => {
          if (Cause.isInterruptedOnly(cause)) return Effect.void
          failures++
          if (failures < maxFailures) {
            // The run stays unfinished in the journal; the recovery scan wakes it again.
            return Effect.logWarning(`run execution failed (${failures}/${maxFailures}); recovery will retry`, cause)
          }
          const reason = Cause.pretty(cause).split("\n")[0] ?? "execution failed"
          return RunJournal.finish(journal.run, "failed", reason).pipe(
            Effect.flatMap((failed) =>
              failed
                ? Effect.zipRight(
                  Metric.increment(Metric.tagged(runsFinished, "status", "failed")),
                  releaseSlot
                )
                : Effect.void
            ),
            Effect.zipRight(Effect.logError(`run failed after ${maxFailures} attempts`, cause)),
            Effect.catchAllCause((again) => Effect.logError("could not mark the run failed", again))
          )
        })
      )

    const annotate = Effect.annotateLogs({ tenant_id: tenantId, run_id: runId })

    const status = Effect.gen(function*() {
      const journal = yield* RunJournal.load(tenantId, runId)
      if (journal === undefined) return yield* new RunNotFound({ runId })
      return yield* decodeRun(journal.run, journal.steps)
    })

    return RunEntity.of({
      Start: () =>
        starting.withPermits(1)(
          Effect.gen(function*() {
            if (claimed !== undefined) return
            const journal = yield* RunJournal.load(tenantId, runId)
            if (journal === undefined) return yield* new RunNotFound({ runId })
            if (!unfinished.includes(journal.run.status)) return
            claimed = journal
            // The run belongs to the entity, not to the caller: `Start` answers now, and the
            // run executes inside the entity's own `Execute` message.
            yield* self.Execute().pipe(
              Effect.catchAllCause((cause) =>
                Cause.isInterruptedOnly(cause) ? Effect.void : Effect.logWarning("run execution ended abnormally", cause)
              ),
              Effect.ensuring(Effect.sync(() => {
                claimed = undefined
              })),
              annotate,
              Effect.forkDaemon
            )
          })
        ).pipe(Effect.catchTag("SqlError", storageError("run.start")), annotate),

      Execute: () =>
        Effect.gen(function*() {
          if (claimed === undefined || executing !== undefined) return
          const fiber = yield* Effect.fork(execute(claimed))
          executing = fiber
          yield* Fiber.await(fiber)
          executing = undefined
        }).pipe(annotate),

      Status: () => status.pipe(Effect.catchTag("SqlError", storageError("run.status")), annotate),

      Cancel: ({ payload }) =>
        Effect.gen(function*() {
          const journal = yield* RunJournal.load(tenantId, runId)
          if (journal === undefined) return yield* new RunNotFound({ runId })
          const cancelled = yield* RunJournal.finish(journal.run, "cancelled", payload.reason)
          if (cancelled) {
            if (executing !== undefined) yield* Fiber.interrupt(executing)
            yield* Metric.increment(Metric.tagged(runsFinished, "status", "cancelled"))
            yield* releaseSlot
          }
          return yield* status
        }).pipe(Effect.catchTag("SqlError", storageError("run.cancel")), annotate)
    })
  }),
  { concurrency: "unbounded", maxIdleTime: "30 seconds" }
)
