/**
 * The in-process `EventBus`: one append-only log, deduplicated by `event_id` within a window,
 * with durable consumers that keep their position (and their unacknowledged deliveries) while
 * the process lives. Time is Effect's clock, so tests drive redelivery with `TestClock`.
 * The log is never trimmed: this adapter is for tests and single-node development.
 */
import type { EventEnvelope } from "@tessera/domain/Event"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import {
  defaultPrefix,
  type Delivery,
  encodeEnvelope,
  EventBus,
  EventBusError,
  filtersOf,
  subjectMatches,
  subjectOf,
  type SubscribeOptions
} from "./EventBus.js"

export interface Options {
  readonly prefix?: string
  /** How long a published `event_id` is remembered for deduplication (default 2 minutes). */
  readonly duplicateWindow?: Duration.DurationInput
}

interface Entry {
  readonly seq: number
  readonly subject: string
  readonly envelope: EventEnvelope
}

interface Pending {
  deadline: number
  count: number
}

interface Consumer {
  readonly key: string
  readonly filters: ReadonlyArray<string>
  readonly ackWaitMs: number
  /** Index in the log of the next event this consumer has not seen. */
  cursor: number
  /** Delivered and not yet acknowledged, by seq. */
  readonly pending: Map<number, Pending>
}

export const make = (options?: Options): Effect.Effect<EventBus["Type"]> =>
  Effect.sync(() => {
    const prefix = options?.prefix ?? defaultPrefix
    const windowMs = Duration.toMillis(options?.duplicateWindow ?? Duration.minutes(2))
    const log: Array<Entry> = []
    const seen = new Map<string, number>()
    const consumers = new Map<string, Consumer>()
    const waiters = new Set<Deferred.Deferred<void>>()

    const wake = () => {
      for (const waiter of waiters) Deferred.unsafeDone(waiter, Exit.void)
      waiters.clear()
    }

    const publish = (envelope: EventEnvelope) =>
      Effect.gen(function*() {
        const subject = yield* subjectOf(prefix, envelope)
        yield* encodeEnvelope(envelope)
        const now = yield* Clock.currentTimeMillis
        // `seen` is in publication order, so the expired ids are at its head.
        for (const [id, at] of seen) {
          if (now - at < windowMs) break
          seen.delete(id)
        }
        if (seen.has(envelope.event_id)) return
        seen.set(envelope.event_id, now)
        log.push({ seq: log.length + 1, subject, envelope })
        wake()
      })

    const consumerFor = (options: SubscribeOptions) =>
      Effect.flatMap(filtersOf(prefix, options), (filters) => {
        const ackWaitMs = Duration.toMillis(options.ackWait ?? Duration.seconds(30))
        const key = JSON.stringify([filters, ackWaitMs])
        const existing = consumers.get(options.durable)
        if (existing !== undefined) {
          return existing.key === key ? Effect.succeed(existing) : Effect.fail(
            new EventBusError({
              operation: "subscribe",
              reason: `durable consumer ${options.durable} already exists with other subjects or ack wait`
            })
          )
        }
        const consumer: Consumer = { key, filters, ackWaitMs, cursor: 0, pending: new Map() }
        consumers.set(options.durable, consumer)
        return Effect.succeed(consumer)
      })

    /** The next due redelivery, else the next unseen matching event; marks it pending. */
    const take = (consumer: Consumer, now: number): Delivery | undefined => {
      let due: number | undefined
      for (const [seq, pending] of consumer.pending) {
        if (pending.deadline <= now && (due === undefined || seq < due)) due = seq
      }
      if (due !== undefined) {
        const pending = consumer.pending.get(due)!
        pending.count += 1
        pending.deadline = now + consumer.ackWaitMs
        return delivery(consumer, log[due - 1]!, pending.count)
      }
      while (consumer.cursor < log.length) {
        const entry = log[consumer.cursor]!
        consumer.cursor += 1
        if (consumer.filters.some((filter) => subjectMatches(filter, entry.subject))) {
          consumer.pending.set(entry.seq, { deadline: now + consumer.ackWaitMs, count: 1 })
          return delivery(consumer, entry, 1)
        }
      }
      return undefined
    }

    const delivery = (consumer: Consumer, entry: Entry, count: number): Delivery => ({
      envelope: entry.envelope,
      subject: entry.subject,
      deliveryCount: count,
      ack: Effect.sync(() => {
        consumer.pending.delete(entry.seq)
      }),
      nak: (delay) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          Effect.sync(() => {
            const pending = consumer.pending.get(entry.seq)
            if (pending === undefined) return
            pending.deadline = now + (delay === undefined ? 0 : Duration.toMillis(delay))
            wake()
          }))
    })

    const nextDeadline = (consumer: Consumer): number | undefined => {
      let next: number | undefined
      for (const pending of consumer.pending.values()) {
        if (next === undefined || pending.deadline < next) next = pending.deadline
      }
      return next
    }

    /** Waits until the consumer has something to deliver. */
    const next = (consumer: Consumer): Effect.Effect<Delivery> =>
      Effect.gen(function*() {
        while (true) {
          const now = yield* Clock.currentTimeMillis
          const signal = yield* Deferred.make<void>()
          const got = take(consumer, now)
          if (got !== undefined) return got
          waiters.add(signal)
          const deadline = nextDeadline(consumer)
          yield* (deadline === undefined
            ? Deferred.await(signal)
            : Effect.race(Deferred.await(signal), Effect.sleep(Duration.millis(Math.max(0, deadline - now))))).pipe(
              Effect.ensuring(Effect.sync(() => waiters.delete(signal)))
            )
        }
      })

    const subscribe = (options: SubscribeOptions) =>
      Stream.unwrap(Effect.map(consumerFor(options), (consumer) => Stream.repeatEffect(next(consumer))))

    const fetch: EventBus["Type"]["fetch"] = (options) =>
      Effect.gen(function*() {
        const consumer = yield* consumerFor(options)
        const out: Array<Delivery> = []
        const drain = Effect.flatMap(Clock.currentTimeMillis, (now) =>
          Effect.sync(() => {
            while (out.length < options.max) {
              const got = take(consumer, now)
              if (got === undefined) break
              out.push(got)
            }
          }))
        if (options.max <= 0) return out
        yield* drain
        if (out.length === 0 && Duration.toMillis(options.expires) > 0) {
          const first = yield* Effect.timeoutOption(next(consumer), options.expires)
          if (Option.isSome(first)) {
            out.push(first.value)
            yield* drain
          }
        }
        return out
      })

    return { prefix, publish, subscribe, fetch }
  })

/** An empty in-process bus with the default prefix and a 2-minute duplicate window. */
export const layer: Layer.Layer<EventBus> = Layer.effect(EventBus, make())

export const layerWith = (options: Options): Layer.Layer<EventBus> => Layer.effect(EventBus, make(options))
