/**
 * The outbox relay: claims unpublished outbox rows in `seq` order (`FOR UPDATE SKIP LOCKED`, as
 * `tessera_system`), publishes them to the `EventBus`, and marks them published in the same
 * transaction. Several relays (one per runner) may run at once: SKIP LOCKED keeps them off each
 * other's rows, and a crash between publish and mark rolls the marks back, so the rows are
 * republished with the same `event_id` and the bus deduplicates them.
 *
 * Order: one relay publishes a tenant's events in `seq` order; a publish that fails holds that
 * tenant's later rows until the next tick (other tenants go on), and is retried there. Relays on
 * several runners may interleave batches, so consumers key on `event_id`, not on arrival order.
 *
 * Poison rows never block the outbox: a row whose envelope does not decode, or that failed
 * `maxAttempts` publishes, is dead-lettered in place (`dead_at`, `last_error`, logged with its
 * tenant); clearing `dead_at` puts it back in the queue.
 */
import type { SqlError } from "@effect/sql/SqlError"
import { EventEnvelope } from "@tessera/domain/Event"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as ParseResult from "effect/ParseResult"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import { Database } from "./Database.js"
import { EventBus } from "./EventBus.js"

export interface RelayOnceOptions {
  /** Rows claimed per transaction (default 100). */
  readonly batchSize?: number
  /**
   * Runs after the batch is published and before it is marked. Fault injection for tests: an
   * effect that fails, dies or interrupts here is a relay that crashed between publish and mark.
   */
  readonly beforeMark?: Effect.Effect<void>
}

export interface RelayOptions {
  /** Rows claimed per transaction (default 100). */
  readonly batchSize?: number
  /** Pause between ticks when the outbox is drained (default 200 ms); a full batch goes again at once. */
  readonly interval?: Duration.DurationInput
}

interface OutboxRow {
  readonly seq: string
  readonly tenant_id: string
  readonly event_id: string
  readonly envelope: unknown
  readonly attempts: number
}

const decodeEnvelope = Schema.decodeUnknown(EventEnvelope)

/** jsonb normally arrives parsed; a JSON string (a row written as a JSON scalar) is parsed here. */
const envelopeOf = (raw: unknown): Effect.Effect<EventEnvelope, string> =>
  typeof raw === "string"
    ? Effect.flatMap(
      Effect.try({ try: (): unknown => JSON.parse(raw), catch: (error) => String(error) }),
      envelopeOf
    )
    : Effect.mapError(decodeEnvelope(raw), ParseResult.TreeFormatter.formatErrorSync)

/** Publish attempts after which a row is dead-lettered (kept, with `dead_at` and `last_error`). */
export const maxAttempts = 10

/** One tick: claims, publishes and marks up to `batchSize` rows; returns how many it published. */
export const relayOnce = (options?: RelayOnceOptions): Effect.Effect<number, SqlError, Database | EventBus> =>
  Effect.gen(function*() {
    const db = yield* Database
    const bus = yield* EventBus
    const sql = db.sql
    const batchSize = options?.batchSize ?? 100
    return yield* db.system(Effect.gen(function*() {
      const rows = yield* sql<OutboxRow>`
        SELECT seq, tenant_id, event_id, envelope, attempts FROM outbox
        WHERE published_at IS NULL AND dead_at IS NULL
        ORDER BY seq
        LIMIT ${batchSize}
        FOR UPDATE SKIP LOCKED`
      const published: Array<string> = []
      // A tenant whose row failed this tick: its later rows wait, so its events stay in order.
      const held = new Set<string>()
      const setAside = (row: OutboxRow, error: string, dead: boolean) =>
        sql`UPDATE outbox SET attempts = attempts + 1, last_error = ${error},
          dead_at = CASE WHEN ${dead} THEN now() ELSE NULL END WHERE seq = ${row.seq}`
      for (const row of rows) {
        if (held.has(row.tenant_id)) continue
        const annotations = { tenant_id: row.tenant_id, event_id: row.event_id, outbox_seq: row.seq }
        const envelope = yield* Effect.either(envelopeOf(row.envelope))
        if (Either.isLeft(envelope)) {
          yield* setAside(row, envelope.left, true)
          yield* Effect.logError("outbox row does not decode; dead-lettered").pipe(
            Effect.annotateLogs({ ...annotations, error: envelope.left })
          )
          continue
        }
        const result = yield* Effect.either(bus.publish(envelope.right))
        if (Either.isLeft(result)) {
          const dead = row.attempts + 1 >= maxAttempts
          yield* setAside(row, result.left.message, dead)
          yield* (dead
            ? Effect.logError(`outbox publish failed ${maxAttempts} times; dead-lettered`)
            : Effect.logWarning("outbox publish failed; retrying on the next tick")).pipe(
              Effect.annotateLogs({ ...annotations, error: result.left.message })
            )
          held.add(row.tenant_id)
          continue
        }
        published.push(row.seq)
      }
      if (options?.beforeMark !== undefined) yield* options.beforeMark
      if (published.length > 0) {
        yield* sql`UPDATE outbox SET published_at = now() WHERE seq IN ${sql.in(published)}`
      }
      return published.length
    }))
  })

/** Relays forever: a tick every `interval`, or at once after a full batch. Failures are logged. */
export const run = (options?: RelayOptions): Effect.Effect<never, never, Database | EventBus> => {
  const batchSize = options?.batchSize ?? 100
  const interval = Duration.decode(options?.interval ?? Duration.millis(200))
  const tick = relayOnce({ batchSize }).pipe(
    Effect.catchAllCause((cause) =>
      Effect.as(Effect.logWarning("outbox relay tick failed; retrying", cause), 0)
    )
  )
  return tick.pipe(
    Effect.repeat(Schedule.identity<number>().pipe(Schedule.addDelay((n) => n >= batchSize ? Duration.zero : interval))),
    Effect.zipRight(Effect.never),
    Effect.annotateLogs("service", "outbox-relay")
  )
}

/** Runs the relay in the background for the lifetime of the layer. */
export const layer = (options?: RelayOptions): Layer.Layer<never, never, Database | EventBus> =>
  Layer.scopedDiscard(Effect.forkScoped(run(options)))
