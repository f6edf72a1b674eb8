/**
 * Group commit for the run journal. Steps finished by concurrent runs queue here; a flusher
 * takes whatever has queued (up to `maxBatch`) and writes it, whatever the tenants, as one
 * statement (RunJournal.appendSteps) while the next batch gathers. Each flusher holds its own
 * connection as `tessera_system` (Database.systemSession), so a flush is one autocommit round
 * trip. A step is acknowledged only after its statement commits. Under load a commit carries
 * many steps, so the journal costs one round trip per batch instead of four per step; alone, a
 * step is flushed at once.
 */
import type { SqlError } from "@effect/sql/SqlError"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Database from "./Database.js"
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
/** Pause before a flusher whose connection failed takes another. */
const reconnectDelay = "100 millis"

export class JournalWriter extends Effect.Service<JournalWriter>()("@tessera/runtime/JournalWriter", {
  scoped: Effect.gen(function*() {
    const db = yield* Database.Database
    const queue = yield* Effect.acquireRelease(Queue.unbounded<Pending>(), Queue.shutdown)

    const flush = (onSession: Database.Session, batch: ReadonlyArray<Pending>) =>
      onSession(RunJournal.appendSteps(batch.map((p) => p.append))).pipe(
        Effect.exit,
        Effect.tap((exit) =>
          Effect.forEach(batch, (p) => {
            const { run } = p.append
            return Exit.isSuccess(exit)
              ? exit.value.has(RunJournal.journalKey(run.tenant_id, run.id))
                ? Deferred.succeed(p.done, undefined)
                : Deferred.fail(p.done, new RunJournal.JournalConflict({ runId: run.id }))
              : Deferred.failCause(p.done, exit.cause)
          }, { discard: true })
        ),
        // A failed statement may mean a broken connection: the flusher takes a fresh one.
        Effect.flatten
      )

    for (let i = 0; i < flushers; i++) {
      yield* db.systemSession.pipe(
        Effect.flatMap((onSession) =>
          Queue.takeBetween(queue, 1, maxBatch).pipe(
            Effect.flatMap((batch) => flush(onSession, Chunk.toReadonlyArray(batch))),
            Effect.forever
          )
        ),
        Effect.scoped,
        Effect.catchAllCause((cause) => Effect.logWarning("journal writer connection failed; reconnecting", cause)),
        Effect.zipRight(Effect.sleep(reconnectDelay)),
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

export const layer: Layer.Layer<JournalWriter, never, Database.Database> = JournalWriter.Default
