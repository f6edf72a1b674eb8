/**
 * Waiting for runs to finish, for the chat deadline. One fiber per node looks at the rows of
 * every awaited run in one query (`CHAT_POLL_INTERVAL`, default 10 ms, only while someone waits)
 * on a connection it holds (Database.systemSession), so a thousand waiting requests cost the
 * database one round trip per interval.
 */
import { RunId } from "@tessera/domain/Ids"
import { type RunStatus, unfinished } from "@tessera/domain/Run"
import { Database, type Session } from "@tessera/runtime/Database"
import * as Config from "effect/Config"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"

export interface Finished {
  readonly status: RunStatus
  readonly output: unknown
  readonly error: string | null
}

interface Row extends Finished {
  readonly tenant_id: string
  readonly id: string
}

export class RunWaiter extends Effect.Service<RunWaiter>()("@tessera/server/RunWaiter", {
  scoped: Effect.gen(function*() {
    const db = yield* Database
    const interval = yield* Config.duration("CHAT_POLL_INTERVAL").pipe(Config.withDefault(Duration.millis(10)), Effect.orDie)
    const waiting = new Map<string, { readonly tenantId: string; readonly runId: string; readonly done: Deferred.Deferred<Finished>; waiters: number }>()
    const bell = yield* Queue.sliding<void>(1)

    const tick = (onSession: Session) => Effect.gen(function*() {
      if (waiting.size === 0) return yield* Queue.take(bell)
      const entries = [...waiting.values()]
      const rows = yield* onSession(db.sql<Row>`SELECT r.tenant_id, r.id, r.status, r.output, r.error FROM agent_runs r
        JOIN unnest(${entries.map((e) => e.tenantId)}::text[], ${entries.map((e) => e.runId)}::text[]) AS w(tenant_id, id)
          ON r.tenant_id = w.tenant_id AND r.id = w.id
        WHERE r.status NOT IN ('requested', 'started')`)
      for (const row of rows) {
        const entry = waiting.get(`${row.tenant_id}/${row.id}`)
        if (entry !== undefined && !unfinished.includes(row.status)) {
          waiting.delete(`${row.tenant_id}/${row.id}`)
          yield* Deferred.succeed(entry.done, { status: row.status, output: row.output, error: row.error })
        }
      }
      yield* Effect.sleep(interval)
    })

    // The poll holds its own connection as tessera_system: one round trip per look.
    yield* db.systemSession.pipe(
      Effect.flatMap((onSession) => Effect.forever(tick(onSession))),
      Effect.scoped,
      Effect.catchAllCause((cause) => Effect.zipRight(Effect.logWarning("run waiter poll failed", cause), Effect.sleep("1 second"))),
      Effect.forever,
      Effect.forkScoped
    )

    /** The run once finished, or none when `timeout` passes first. */
    const await_ = (tenantId: string, runId: RunId, timeout: Duration.Duration): Effect.Effect<Option.Option<Finished>> =>
      Effect.gen(function*() {
        const key = `${tenantId}/${runId}`
        let entry = waiting.get(key)
        if (entry === undefined) {
          entry = { tenantId, runId, done: yield* Deferred.make<Finished>(), waiters: 0 }
          waiting.set(key, entry)
        }
        const current = entry
        current.waiters++
        yield* Queue.offer(bell, undefined)
        return yield* Deferred.await(current.done).pipe(
          Effect.timeoutOption(timeout),
          Effect.ensuring(Effect.sync(() => {
            current.waiters--
            if (current.waiters === 0 && waiting.get(key) === current) waiting.delete(key)
          }))
        )
      })

    return { await: await_ } as const
  })
}) {}

export const layer: Layer.Layer<RunWaiter, never, Database> = RunWaiter.Default
