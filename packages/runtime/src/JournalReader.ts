/**
 * Group reads of run journals: the `Start` of concurrent runs each needs its run's journal; a
 * reader fiber takes whatever loads have queued (up to `maxBatch`) and answers them with one
 * statement (RunJournal.loadMany), on the reader's own connection held as `tessera_system`
 * (internal/systemBatches: one round trip), while the next batch gathers. Alone, a load is read
 * at once.
 */
import type { SqlError } from "@effect/sql/SqlError"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Layer from "effect/Layer"
import type * as Database from "./Database.js"
import * as SystemBatches from "./internal/systemBatches.js"
import * as RunJournal from "./RunJournal.js"

interface Pending {
  readonly tenantId: string
  readonly runId: string
  readonly done: Deferred.Deferred<RunJournal.Journal | undefined, SqlError>
}

const maxBatch = 256

export class JournalReader extends Effect.Service<JournalReader>()("@tessera/runtime/JournalReader", {
  scoped: Effect.gen(function*() {
    const offer = yield* SystemBatches.make<Pending, ReadonlyMap<string, RunJournal.Journal>>({
      name: "journal reader",
      workers: 1,
      maxBatch,
      statement: RunJournal.loadMany,
      answer: ({ done, runId, tenantId }, exit) =>
        Exit.isSuccess(exit)
          ? Deferred.succeed(done, exit.value.get(RunJournal.journalKey(tenantId, runId)))
          : Deferred.failCause(done, exit.cause)
    })

    /** The run's journal, or undefined when there is no such run. */
    const load = (tenantId: string, runId: string): Effect.Effect<RunJournal.Journal | undefined, SqlError> =>
      Effect.flatMap(Deferred.make<RunJournal.Journal | undefined, SqlError>(), (done) =>
        Effect.zipRight(offer({ tenantId, runId, done }), Deferred.await(done)))

    return { load } as const
  })
}) {}

export const layer: Layer.Layer<JournalReader, never, Database.Database> = JournalReader.Default
