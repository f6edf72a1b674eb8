/**
 * Behaviour of the Run actor: replays the journal on every `Start` and executes the plan from
 * its first unjournaled step. `Start` is idempotent and serialised per run, so the recovery scan
 * (RunRecovery) can wake any unfinished run on whichever runner now owns its shard; a step that
 * another activation journaled first is never finished twice (see RunJournal).
 */
import { Entity } from "@effect/cluster"
import type { Sharding } from "@effect/cluster/Sharding"
import type * as SqlClient from "@effect/sql/SqlClient"
import { RunNotFound } from "@tessera/domain/Errors"
import { isTerminal } from "@tessera/domain/Run"
import { RunEntity } from "@tessera/domain/RunEntity"
import { TenantEntity } from "@tessera/domain/TenantEntity"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import type * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import { Database } from "./Database.js"
import * as EchoWorkflow from "./EchoWorkflow.js"
import { activations } from "./EntityMetrics.js"
import { decodeRun } from "./internal/rows.js"
import { storageError } from "./internal/storage.js"
import * as RunJournal from "./RunJournal.js"

const runsFinished = Metric.counter("tessera_runs_finished_total", {
  description: "Runs that reached a terminal status on this runner"
})

/** The plan for a workflow name; until the workflow engine lands every run uses the echo workflow. */
const planFor = (_workflow: string): ReadonlyArray<EchoWorkflow.Step> => EchoWorkflow.steps

/** `<tenant>/<run>` → its parts. */
const parseAddress = (entityId: string) => {
  const slash = entityId.indexOf("/")
  return { tenantId: entityId.slice(0, slash), runId: entityId.slice(slash + 1) }
}

export const layer: Layer.Layer<never, never, Database | SqlClient.SqlClient | Sharding> = RunEntity.toLayer(
  Effect.gen(function*() {
    const address = yield* Entity.CurrentAddress
    const runner = yield* Entity.CurrentRunnerAddress
    const { runId, tenantId } = parseAddress(address.entityId)
    const tenants = yield* TenantEntity.client
    const executing = yield* Effect.makeSemaphore(1)
    let inFlight: Fiber.Fiber<unknown, unknown> | undefined
    yield* Metric.increment(activations("Run"))

    const releaseSlot = tenants(tenantId).RecordUsage({ tokens: 0, costUsd: 0, runFinished: true }).pipe(
      Effect.catchAllCause((cause) => Effect.logWarning("could not release the tenant's run slot", cause))
    )

    const execute = Effect.gen(function*() {
      const journal = yield* RunJournal.load(tenantId, runId)
      if (journal === undefined) return yield* new RunNotFound({ runId })
      if (isTerminal(journal.run.status) || journal.run.status === "failed") return
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
      yield* Metric.increment(Metric.tagged(runsFinished, "status", "completed"))
      yield* releaseSlot
    }).pipe(
      // Another activation journaled under us: the journal is authoritative, nothing to redo.
      Effect.catchTag("JournalConflict", () => Effect.logDebug("run journal moved under this activation")),
      Effect.annotateLogs({ tenant_id: tenantId, run_id: runId })
    )

    const status = Effect.gen(function*() {
      const journal = yield* RunJournal.load(tenantId, runId)
      if (journal === undefined) return yield* new RunNotFound({ runId })
      return yield* decodeRun(journal.run, journal.steps)
    })

    return RunEntity.of({
      Start: () =>
        executing.withPermits(1)(
          Effect.gen(function*() {
            const fiber = yield* Effect.fork(execute)
            inFlight = fiber
            const exit = yield* Fiber.await(fiber)
            inFlight = undefined
            // A cancelled run ends its Start quietly; failures surface to the caller.
            if (Exit.isFailure(exit) && !Cause.isInterruptedOnly(exit.cause)) return yield* exit
          })
        ).pipe(Effect.catchTag("SqlError", storageError("run.start"))),

      Status: () => status.pipe(Effect.catchTag("SqlError", storageError("run.status"))),

      Cancel: ({ payload }) =>
        Effect.gen(function*() {
          const journal = yield* RunJournal.load(tenantId, runId)
          if (journal === undefined) return yield* new RunNotFound({ runId })
          const cancelled = yield* RunJournal.finish(journal.run, "cancelled", payload.reason)
          if (cancelled) {
            if (inFlight !== undefined) yield* Fiber.interrupt(inFlight)
            yield* Metric.increment(Metric.tagged(runsFinished, "status", "cancelled"))
            yield* releaseSlot
          }
          return yield* status
        }).pipe(Effect.catchTag("SqlError", storageError("run.cancel")))
    })
  }),
  { concurrency: "unbounded", maxIdleTime: "2 minutes" }
)
