/**
 * The in-process `EventBus`: one append-only log, deduplicated by `event_id` within a window,
 * with durable consumers that keep their position (and their unacknowledged deliveries) while
 * the process lives. Time is Effect's clock, so tests drive redelivery with `TestClock`.
 * The log keeps what some consumer still needs: events every consumer has seen and acknowledged
 * are dropped, and past `maxEntries` the oldest go whatever the consumers (JetStream's limits
 * with discard-old), so a long-running development node holds a bounded log. A consumer created
 * later starts at the oldest event kept. The layer also provides the in-process `TokenStream`.
 */
import type { EventEnvelope } from "@tessera/domain/Event"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
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
import { subscriberCapacity, type TokenDelta, TokenStream } from "./TokenStream.js"

export interface Options {
  readonly prefix?: string
  /** How long a published `event_id` is remembered for deduplication (default 2 minutes). */
  readonly duplicateWindow?: Duration.DurationInput
  /** Events kept at most, needed or not (default 100,000). */
  readonly maxEntries?: number
}

/** Publications between two looks at what can be dropped. */
const trimEvery = 1024

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
  /** Sequence number of the last event this consumer has seen (0: none). */
  cursor: number
  /** Delivered and not yet acknowledged, by seq. */
  readonly pending: Map<number, Pending>
}

export const make = (options?: Options): Effect.Effect<EventBus["Type"]> =>
  Effect.sync(() => {
    const prefix = options?.prefix ?? defaultPrefix
    const windowMs = Duration.toMillis(options?.duplicateWindow ?? Duration.minutes(2))
    const maxEntries = options?.maxEntries ?? 100_000
    const log: Array<Entry> = []
    /** Events dropped from the head of the log: `log[i]` has seq `dropped + i + 1`. */
    let dropped = 0
    let published = 0
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
        log.push({ seq: dropped + log.length + 1, subject, envelope })
        if (++published % trimEvery === 0 || log.length > maxEntries) trim()
        wake()
      })

    /** Drops the events no consumer needs any more, and the oldest past `maxEntries`. */
    const trim = () => {
      let keepFrom = dropped + log.length + 1
      for (const consumer of consumers.values()) {
        keepFrom = Math.min(keepFrom, consumer.cursor + 1)
        for (const seq of consumer.pending.keys()) keepFrom = Math.min(keepFrom, seq)
      }
      keepFrom = Math.max(keepFrom, dropped + log.length + 1 - maxEntries)
      const drop = keepFrom - 1 - dropped
      if (drop <= 0) return
      log.splice(0, drop)
      dropped += drop
      for (const consumer of consumers.values()) {
        if (consumer.cursor < dropped) consumer.cursor = dropped
        for (const seq of consumer.pending.keys()) if (seq <= dropped) consumer.pending.delete(seq)
      }
    }

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
        const consumer: Consumer = { key, filters, ackWaitMs, cursor: dropped, pending: new Map() }
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
        return delivery(consumer, log[due - 1 - dropped]!, pending.count)
      }
      while (consumer.cursor < dropped + log.length) {
        const entry = log[consumer.cursor - dropped]!
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

/**
 * The in-process token channel: a sliding hub, so a publisher never waits and a subscriber
 * that falls behind by `subscriberCapacity` deltas loses the oldest.
 */
export const makeTokens: Effect.Effect<TokenStream["Type"]> = Effect.map(
  PubSub.sliding<TokenDelta>(subscriberCapacity),
  (hub) => ({ publish: (delta) => Effect.asVoid(PubSub.publish(hub, delta)), subscribe: Stream.fromPubSub(hub) })
)

const tokens: Layer.Layer<TokenStream> = Layer.effect(TokenStream, makeTokens)

/** An empty in-process bus with the default prefix and a 2-minute duplicate window, and its token channel. */
export const layer: Layer.Layer<EventBus | TokenStream> = Layer.merge(Layer.effect(EventBus, make()), tokens)

export const layerWith = (options: Options): Layer.Layer<EventBus | TokenStream> =>
  Layer.merge(Layer.effect(EventBus, make(options)), tokens)
