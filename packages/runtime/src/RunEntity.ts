/**
 * Behaviour of the Run actor: `Start` replays the journal and executes the run's workflow
 * (WorkflowExecutor, on the plans of WorkflowPlans) from its first unjournaled step in the
 * entity's own scope, answering as soon as the run is under way. `Start`
 * is idempotent (a run already executing here, or finished, is left alone), so the recovery scan
 * (RunRecovery) can wake any unfinished run on whichever runner now owns its shard; a step that
 * another activation journaled first is never finished twice (see RunJournal). `Signal` stores a
 * signal in `run_signals` and wakes the run's `wait` step if it is waiting for it.
 */
import { Entity } from "@effect/cluster"
import type { Sharding } from "@effect/cluster/Sharding"
import type * as SqlClient from "@effect/sql/SqlClient"
import { RunNotFound } from "@tessera/domain/Errors"
import { unfinished } from "@tessera/domain/Run"
import { RunEntity } from "@tessera/domain/RunEntity"
import { TenantEntity } from "@tessera/domain/TenantEntity"
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import { Database } from "./Database.js"
import { activations } from "./EntityMetrics.js"
import { decodeRun } from "./internal/rows.js"
import { splitEntityId } from "./internal/entityId.js"
import { storageError } from "./internal/storage.js"
import * as JournalReader from "./JournalReader.js"
import * as JournalWriter from "./JournalWriter.js"
import { LlmGateway } from "./LlmGateway.js"
import * as RunJournal from "./RunJournal.js"
import type { ToolRegistry } from "./ToolRegistry.js"
import * as WorkflowExecutor from "./WorkflowExecutor.js"
import type { WorkflowPlans } from "./WorkflowPlans.js"

const runsFinished = Metric.counter("tessera_runs_finished_total", {
  description: "Runs that reached a terminal status on this runner"
})

/** Consecutive failed executions (storage down, a step failing) after which a run is marked failed. */
const maxFailures = 5

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

      const db = yield* Database
      const reader = yield* JournalReader.JournalReader
      const services = yield* Effect.context<Database | JournalWriter.JournalWriter | ToolRegistry | WorkflowPlans>()
      const gateway = yield* Effect.serviceOption(LlmGateway)
      // Signals this activation's `wait` steps are waiting for, by name.
      const waiting = new Map<string, Deferred.Deferred<unknown>>()
      const signalOf = (name: string) => {
        let deferred = waiting.get(name)
        if (deferred === undefined) {
          deferred = Deferred.unsafeMake<unknown>(FiberId.none)
          waiting.set(name, deferred)
        }
        return deferred
      }
      const host: WorkflowExecutor.Host = {
        runner: `${runner.host}:${runner.port}`,
        awaitSignal: (name) =>
          Effect.gen(function*() {
            const deferred = signalOf(name)
            const stored = yield* db.tenant(tenantId)(db.sql<{ payload: unknown }>`SELECT payload FROM run_signals
              WHERE tenant_id = ${tenantId} AND run_id = ${runId} AND name = ${name}`)
            if (stored[0] !== undefined) return stored[0].payload
            return yield* Deferred.await(deferred)
          })
      }

      const execute = (journal: RunJournal.Journal) =>
        Effect.gen(function*() {
          const ended = yield* WorkflowExecutor.execute(journal, host, { maxSteps }).pipe(
            Effect.provide(services),
            Option.isSome(gateway) ? Effect.provideService(LlmGateway, gateway.value) : (effect) => effect
          )
          failures = 0
          yield* Metric.increment(Metric.tagged(runsFinished, "status", ended))
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
              const journal = yield* reader.load(tenantId, runId)
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
          }).pipe(Effect.catchTag("SqlError", storageError("run.cancel")), annotate),

        Signal: ({ payload }) =>
          Effect.gen(function*() {
            const stored = yield* db.tenant(tenantId)(db.sql`INSERT INTO run_signals (tenant_id, run_id, name, payload)
              SELECT tenant_id, id, ${payload.name}, ${JSON.stringify(payload.payload ?? null)}::jsonb FROM agent_runs
              WHERE tenant_id = ${tenantId} AND id = ${runId}
              ON CONFLICT DO NOTHING RETURNING name`)
            if (stored.length === 0) {
              const exists = yield* RunJournal.load(tenantId, runId)
              if (exists === undefined) return yield* new RunNotFound({ runId })
              return
            }
            yield* Deferred.succeed(signalOf(payload.name), payload.payload ?? null)
          }).pipe(Effect.catchTag("SqlError", storageError("run.signal")), annotate)
      })
    }),
    { concurrency: "unbounded", maxIdleTime: "30 seconds" }
  ).pipe(Layer.provide([JournalReader.layer, JournalWriter.layer]))
}))
