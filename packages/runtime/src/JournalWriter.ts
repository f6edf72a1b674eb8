/**
 * Group commit for the run journal. Steps finished by concurrent runs queue here; a flusher
 * takes whatever has queued (up to `maxBatch`) and writes it, whatever the tenants, as one
 * statement (RunJournal.appendSteps) while the next batch gathers. Each flusher holds its own
 * connection as `tessera_system` (internal/systemBatches), so a flush is one autocommit round
 * trip. A step is acknowledged only after its statement commits. Under load a commit carries
 * many steps, so the journal costs one round trip per batch instead of four per step; alone, a
 * step is flushed at once.
 */
import type { SqlError } from "@effect/sql/SqlError"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Layer from "effect/Layer"
import type * as Database from "./Database.js"
import * as SystemBatches from "./internal/systemBatches.js"
import type { RunRow } from "./internal/rows.js"
import * as RunJournal from "./RunJournal.js"

interface Pending {
  readonly append: RunJournal.Append
  readonly done: Deferred.Deferred<void, SqlError | RunJournal.JournalConflict>
}

/** Steps one flush takes at most. */
const maxBatch = 256
/**
 * Flushes in flight at once: more commit sooner, fewer batch more. Two: a step waits for the
 * statement in flight less (its Postgres side is a fraction of its round trip under load: the
 * rest is Node's turn to send and read it), and batches stay large enough that the statement's
 * fixed cost (parse, commit) is shared. Measured (bench:workflows, same hour): one flusher
 * 632–659 runs/s, two 687–782, four fewer than two.
 */
const flushers = 2

export class JournalWriter extends Effect.Service<JournalWriter>()("@tessera/runtime/JournalWriter", {
  scoped: Effect.gen(function*() {
    const offer = yield* SystemBatches.make<Pending, ReadonlySet<string>>({
      name: "journal writer",
      workers: flushers,
      maxBatch,
      statement: (batch) => RunJournal.appendSteps(batch.map((p) => p.append)),
      answer: ({ append: { run }, done }, exit) =>
        Exit.isSuccess(exit)
          ? exit.value.has(RunJournal.journalKey(run.tenant_id, run.id))
            ? Deferred.succeed(done, undefined)
            : Deferred.fail(done, new RunJournal.JournalConflict({ runId: run.id }))
          : Deferred.failCause(done, exit.cause)
    })

    /** Journals one step; succeeds once it is committed, JournalConflict when it was not written. */
    const append = (run: RunRow, step: RunJournal.StepWrite): Effect.Effect<void, SqlError | RunJournal.JournalConflict> =>
      Effect.flatMap(Deferred.make<void, SqlError | RunJournal.JournalConflict>(), (done) =>
        Effect.zipRight(offer({ append: { run, step }, done }), Deferred.await(done)))

    return { append } as const
  })
}) {}

export const layer: Layer.Layer<JournalWriter, never, Database.Database> = JournalWriter.Default
