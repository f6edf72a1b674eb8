/**
 * Group reads of run journals: the `Start` of concurrent runs each needs its run's journal; a
 * reader fiber takes whatever loads have queued (up to `maxBatch`) and answers them with one
 * statement (RunJournal.loadMany) in one `Database.system` transaction, while the next batch
 * gathers. Alone, a load is read at once.
 */
import type { SqlError } from "@effect/sql/SqlError"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import { Database } from "./Database.js"
import * as RunJournal from "./RunJournal.js"

interface Pending {
  readonly tenantId: string
  readonly runId: string
  readonly done: Deferred.Deferred<RunJournal.Journal | undefined, SqlError>
}

const maxBatch = 256
const readers = 2

export class JournalReader extends Effect.Service<JournalReader>()("@tessera/runtime/JournalReader", {
  scoped: Effect.gen(function*() {
    const db = yield* Database
    const queue = yield* Effect.acquireRelease(Queue.unbounded<Pending>(), Queue.shutdown)

    const read = (batch: ReadonlyArray<Pending>) =>
      db.system(RunJournal.loadMany(batch)).pipe(
        Effect.provideService(SqlClient.SqlClient, db.sql),
        Effect.exit,
        Effect.flatMap((exit) =>
          Effect.forEach(batch, (p) =>
            Exit.isSuccess(exit)
              ? Deferred.succeed(p.done, exit.value.get(RunJournal.journalKey(p.tenantId, p.runId)))
              : Deferred.failCause(p.done, exit.cause), { discard: true })
        )
      )

    for (let i = 0; i < readers; i++) {
      yield* Queue.takeBetween(queue, 1, maxBatch).pipe(
        Effect.flatMap((batch) => read(Chunk.toReadonlyArray(batch))),
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

export const layer: Layer.Layer<JournalReader, never, Database> = JournalReader.Default
