/**
 * Group commit for the run journal. Steps finished by concurrent runs queue here; a flusher
 * takes whatever has queued (up to `maxBatch`) and writes it, whatever the tenants, as one
 * statement (RunJournal.appendSteps) in one `Database.system` transaction, while the next batch
 * gathers. A step is acknowledged only after its transaction commits. Under load a commit
 * carries many steps, so the journal costs a few round trips per batch instead of four per step;
 * alone, a step is flushed at once.
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
import type { RunRow } from "./internal/rows.js"
import * as RunJournal from "./RunJournal.js"

interface Pending {
  readonly append: RunJournal.Append
  readonly done: Deferred.Deferred<void, SqlError | RunJournal.JournalConflict>
}

/** Steps one flush takes at most. */
const maxBatch = 256
/** Flushes in flight at once: more commit sooner, fewer batch more. */
const flushers = 2

export class JournalWriter extends Effect.Service<JournalWriter>()("@tessera/runtime/JournalWriter", {
  scoped: Effect.gen(function*() {
    const db = yield* Database
    const queue = yield* Effect.acquireRelease(Queue.unbounded<Pending>(), Queue.shutdown)

    const flush = (batch: ReadonlyArray<Pending>) =>
      db.system(RunJournal.appendSteps(batch.map((p) => p.append))).pipe(
        Effect.provideService(SqlClient.SqlClient, db.sql),
        Effect.exit,
        Effect.flatMap((exit) =>
          Effect.forEach(batch, (p) => {
            const { run } = p.append
            return Exit.isSuccess(exit)
              ? exit.value.has(RunJournal.journalKey(run.tenant_id, run.id))
                ? Deferred.succeed(p.done, undefined)
                : Deferred.fail(p.done, new RunJournal.JournalConflict({ runId: run.id }))
              : Deferred.failCause(p.done, exit.cause)
          }, { discard: true })
        )
      )

    for (let i = 0; i < flushers; i++) {
      yield* Queue.takeBetween(queue, 1, maxBatch).pipe(
        Effect.flatMap((batch) => flush(Chunk.toReadonlyArray(batch))),
        Effect.forever,
        Effect.forkScoped
      )
    }

    /** Journals one step; succeeds once it is committed, JournalConflict when it was not written. */
    const append = (run: RunRow, step: RunJournal.StepWrite): Effect.Effect<void, SqlError | RunJournal.JournalConflict> =>
      Effect.flatMap(Deferred.make<void, SqlError | RunJournal.JournalConflict>(), (done) =>
        Effect.zipRight(Queue.offer(queue, { append: { run, step }, done }), Deferred.await(done)))

    return { append } as const
  })
}) {}

export const layer: Layer.Layer<JournalWriter, never, Database> = JournalWriter.Default
