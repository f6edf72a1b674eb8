/**
 * Group reads of run journals: the `Start` of concurrent runs each needs its run's journal; a
 * reader fiber takes whatever loads have queued (up to `maxBatch`) and answers them with one
 * statement (RunJournal.loadMany), on the reader's own connection held as `tessera_system`
 * (Database.systemSession: one round trip), while the next batch gathers. Alone, a load is read at once.
 */
import type { SqlError } from "@effect/sql/SqlError"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Database from "./Database.js"
import * as RunJournal from "./RunJournal.js"

interface Pending {
  readonly tenantId: string
  readonly runId: string
  readonly done: Deferred.Deferred<RunJournal.Journal | undefined, SqlError>
}

const maxBatch = 256
const readers = 2
/** Pause before a reader whose connection failed takes another. */
const reconnectDelay = "100 millis"

export class JournalReader extends Effect.Service<JournalReader>()("@tessera/runtime/JournalReader", {
  scoped: Effect.gen(function*() {
    const db = yield* Database.Database
    const queue = yield* Effect.acquireRelease(Queue.unbounded<Pending>(), Queue.shutdown)

    const read = (onSession: Database.Session, batch: ReadonlyArray<Pending>) =>
      onSession(RunJournal.loadMany(batch)).pipe(
        Effect.exit,
        Effect.tap((exit) =>
          Effect.forEach(batch, (p) =>
            Exit.isSuccess(exit)
              ? Deferred.succeed(p.done, exit.value.get(RunJournal.journalKey(p.tenantId, p.runId)))
              : Deferred.failCause(p.done, exit.cause), { discard: true })
        ),
        // A failed statement may mean a broken connection: the reader takes a fresh one.
        Effect.flatten
      )

    for (let i = 0; i < readers; i++) {
      yield* db.systemSession.pipe(
        Effect.flatMap((onSession) =>
          Queue.takeBetween(queue, 1, maxBatch).pipe(
            Effect.flatMap((batch) => read(onSession, Chunk.toReadonlyArray(batch))),
            Effect.forever
          )
        ),
        Effect.scoped,
        Effect.catchAllCause((cause) => Effect.logWarning("journal reader connection failed; reconnecting", cause)),
        Effect.zipRight(Effect.sleep(reconnectDelay)),
        Effect.forever,
        Effect.forkScoped
      )
    }

    /** The run's journal, or undefined when there is no such run. */
    const load = (tenantId: string, runId: string): Effect.Effect<RunJournal.Journal | undefined, SqlError> =>
      Effect.flatMap(Deferred.make<RunJournal.Journal | undefined, SqlError>(), (done) =>
        Effect.zipRight(Queue.offer(queue, { tenantId, runId, done }), Deferred.await(done)))

    return { load } as const
  })
}) {}

export const layer: Layer.Layer<JournalReader, never, Database.Database> = JournalReader.Default
