/**
 * Wakes unfinished runs. A cluster singleton (one runner at a time; it moves to a survivor when
 * its runner dies) scans `agent_runs` every `RUN_RECOVERY_INTERVAL` (default 2 s) for runs still
 * `requested` or `started` whose row has not changed for `RUN_RECOVERY_STALE_AFTER` (default
 * 5 s) and sends each a `Start`. Start is idempotent and serialised per run, so waking a run that
 * is in fact progressing on a live runner costs at most one journal read (none while it is under
 * way on its host; a run's row changes when an activation starts and when the run ends, not at
 * every step, so a long run is woken too); a run whose runner was killed
 * continues, on the runner that now owns its shard, from its first unjournaled step.
 */
import { Singleton } from "@effect/cluster"
import type { Sharding } from "@effect/cluster/Sharding"
import * as RunEntity from "@tessera/domain/RunEntity"
import type { RunId, TenantId } from "@tessera/domain/Ids"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Schedule from "effect/Schedule"
import { Database } from "./Database.js"

const woken = Metric.counter("tessera_runs_recovered_total", {
  description: "Unfinished runs woken by the recovery scan"
})

/** One scan: wakes the stale unfinished runs and answers how many it woke. */
export const scanOnce = (staleAfter: Duration.Duration, limit = 500) =>
  Effect.gen(function*() {
    const db = yield* Database
    const runs = yield* RunEntity.handles
    const stale = yield* db.system(db.sql<{ tenant_id: TenantId; id: RunId }>`
      SELECT tenant_id, id FROM agent_runs
      WHERE status IN ('requested', 'started')
        AND updated_at < now() - make_interval(secs => ${Duration.toSeconds(staleAfter)})
      ORDER BY updated_at LIMIT ${limit}`)
    yield* Effect.forEach(
      stale,
      (run) =>
        runs(run.tenant_id, run.id).Start().pipe(
          Effect.catchAllCause((cause) => Effect.logWarning(`could not wake run ${run.tenant_id}/${run.id}`, cause))
        ),
      { concurrency: 16, discard: true }
    )
    if (stale.length > 0) {
      yield* Metric.incrementBy(woken, stale.length)
      yield* Effect.logInfo(`recovery woke ${stale.length} unfinished run(s)`)
    }
    return stale.length
  })

export const layer: Layer.Layer<never, never, Database | Sharding> = Layer.unwrapEffect(
  Effect.gen(function*() {
    const interval = yield* Config.duration("RUN_RECOVERY_INTERVAL").pipe(Config.withDefault(Duration.seconds(2)))
    const staleAfter = yield* Config.duration("RUN_RECOVERY_STALE_AFTER").pipe(Config.withDefault(Duration.seconds(5)))
    return Singleton.make(
      "tessera/RunRecovery",
      scanOnce(staleAfter).pipe(
        Effect.catchAllCause((cause) => Effect.logWarning("run recovery scan failed", cause)),
        Effect.repeat(Schedule.spaced(interval)),
        Effect.asVoid
      )
    )
  })
).pipe(Layer.orDie)
