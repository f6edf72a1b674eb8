/**
 * What the run journal's group commit (JournalWriter) and group reads (JournalReader) share:
 * `workers` fibers, each holding a connection as `tessera_system` (Database.systemSession), take
 * whatever has queued, up to `maxBatch` items, and run one statement for the batch while the next
 * one gathers; the statement's exit answers every item of it. A failed statement (perhaps a
 * broken connection) makes its worker take a fresh connection.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import { Database, type Session } from "../Database.js"

export interface Options<Item, A> {
  /** For the log line of a failed connection. */
  readonly name: string
  readonly workers: number
  readonly maxBatch: number
  readonly statement: (batch: ReadonlyArray<Item>) => Effect.Effect<A, SqlError, SqlClient.SqlClient>
  readonly answer: (item: Item, exit: Exit.Exit<A, SqlError>) => Effect.Effect<void>
}

/** Pause before a worker whose connection failed takes another. */
const reconnectDelay = "100 millis"

/** Starts the workers for the scope; answers the function that queues an item. */
export const make = <Item, A>(options: Options<Item, A>): Effect.Effect<(item: Item) => Effect.Effect<void>, never, Database | Scope.Scope> =>
  Effect.gen(function*() {
    const db = yield* Database
    const queue = yield* Effect.acquireRelease(Queue.unbounded<Item>(), Queue.shutdown)
    const run = (onSession: Session) =>
      Queue.takeBetween(queue, 1, options.maxBatch).pipe(
        Effect.flatMap((taken) => {
          const batch = Chunk.toReadonlyArray(taken)
          return onSession(options.statement(batch)).pipe(
            Effect.exit,
            Effect.tap((exit) => Effect.forEach(batch, (item) => options.answer(item, exit), { discard: true })),
            Effect.flatten
          )
        }),
        Effect.forever
      )
    for (let i = 0; i < options.workers; i++) {
      yield* db.systemSession.pipe(
        Effect.flatMap(run),
        Effect.scoped,
        Effect.catchAllCause((cause) => Effect.logWarning(`${options.name} connection failed; reconnecting`, cause)),
        Effect.zipRight(Effect.sleep(reconnectDelay)),
        Effect.forever,
        Effect.forkScoped
      )
    }
    return (item: Item) => Queue.offer(queue, item).pipe(Effect.asVoid)
  })
