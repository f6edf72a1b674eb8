/**
 * The JetStream `EventBus`. On start it connects and ensures the stream (subjects `<prefix>.>`,
 * file storage, a duplicate window); `publish` sets `Nats-Msg-Id` to the `event_id`, so JetStream
 * drops a republished event inside that window; consumers are durable pull consumers with explicit
 * acknowledgement. The layer's finalizer drains the connection.
 *
 * JetStream before 2.10 allows one filter subject per consumer, so a consumer with several
 * subjects is one durable JetStream consumer per subject (named `<durable>-<hash of filter>`),
 * merged; a consumer with one subject is the JetStream consumer `<durable>`.
 *
 * The same connection carries the `TokenStream`: NATS core publish/subscribe on subjects outside
 * the stream, so tokens are never stored. A delta is written into the client's buffer without
 * waiting for the server; one that cannot be (connection closed, reconnect buffer full) is
 * dropped. A subscriber holds at most `subscriberCapacity` deltas and loses the oldest beyond.
 */
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import type { ConfigError } from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Mailbox from "effect/Mailbox"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import {
  AckPolicy,
  connect,
  type Consumer,
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  nanos,
  type NatsConnection,
  StorageType
} from "nats"
import { createHash } from "node:crypto"
import {
  decodeEnvelope,
  defaultPrefix,
  type Delivery,
  encodeEnvelope,
  EventBus,
  EventBusError,
  filtersOf,
  subjectOf,
  type SubscribeOptions
} from "./EventBus.js"
import * as Tokens from "./TokenStream.js"
import { TokenStream } from "./TokenStream.js"

export interface Options {
  /** Comma-separated server URLs, e.g. `nats://127.0.0.1:4222`. */
  readonly servers: string
  /** Subject prefix (default "tessera"). */
  readonly prefix?: string
  /** Stream name (default the prefix in upper case, e.g. "TESSERA"). */
  readonly stream?: string
  /** JetStream's deduplication window (default 2 minutes). */
  readonly duplicateWindow?: Duration.DurationInput
  /** How long the stream keeps events (default 7 days). */
  readonly maxAge?: Duration.DurationInput
  /** Delete the stream when the layer closes: for tests, which each use their own stream. */
  readonly deleteStreamOnClose?: boolean
}

const reasonOf = (error: unknown): string => error instanceof Error ? error.message : String(error)

const fail = (operation: EventBusError["operation"]) => (error: unknown) =>
  new EventBusError({ operation, reason: reasonOf(error) })

/** The servers without credentials, for error messages; undefined when one is not a URL. */
const safeServers = (servers: string): ReadonlyArray<string> | undefined => {
  const out: Array<string> = []
  for (const server of servers.split(",").map((s) => s.trim())) {
    try {
      const url = new URL(server.includes("://") ? server : `nats://${server}`)
      if (url.hostname === "") return undefined
      out.push(`${url.protocol}//${url.host}`)
    } catch {
      return undefined
    }
  }
  return out.length === 0 ? undefined : out
}

/** How long one pull of a subscription waits on the server (JetStream's minimum is 1 s). */
const pullExpiresMillis = 2000

/** Adapter timers (retry backoff, stop timeout) run on real time even under a test clock. */
const liveClock = Clock.make()

const streamNameOf = (prefix: string) => prefix.toUpperCase().replace(/[^A-Z0-9_-]/g, "_")

const consumerNameOf = (durable: string, filters: ReadonlyArray<string>, filter: string) =>
  filters.length === 1 ? durable : `${durable}-${createHash("sha256").update(filter).digest("hex").slice(0, 12)}`

/** The event bus and the token channel on one connection. */
export interface Services {
  readonly bus: EventBus["Type"]
  readonly tokens: TokenStream["Type"]
}

export const make = (options: Options): Effect.Effect<Services, EventBusError, Scope.Scope> =>
  Effect.gen(function*() {
    const prefix = options.prefix ?? defaultPrefix
    const stream = options.stream ?? streamNameOf(prefix)
    const servers = safeServers(options.servers)
    if (servers === undefined) {
      return yield* new EventBusError({
        operation: "connect",
        reason: "invalid NATS server URL: expected nats://host:port (comma-separated for several)"
      })
    }

    const nc: NatsConnection = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () =>
          connect({ servers: options.servers.split(",").map((s) => s.trim()), name: "tessera", maxReconnectAttempts: -1 }),
        catch: (error) =>
          new EventBusError({ operation: "connect", reason: `cannot connect to ${servers.join(", ")}: ${reasonOf(error)}` })
      }),
      (nc) => Effect.promise(() => nc.drain().catch(() => undefined))
    )
    const jsm: JetStreamManager = yield* Effect.tryPromise({
      try: () => nc.jetstreamManager(),
      catch: (error) =>
        new EventBusError({ operation: "connect", reason: `JetStream is not available at ${servers.join(", ")}: ${reasonOf(error)}` })
    })
    const js: JetStreamClient = nc.jetstream()

    const subjects = [`${prefix}.>`]
    yield* Effect.tryPromise({
      try: async () => {
        try {
          await jsm.streams.add({
            name: stream,
            subjects,
            storage: StorageType.File,
            duplicate_window: nanos(Duration.toMillis(options.duplicateWindow ?? Duration.minutes(2))),
            max_age: nanos(Duration.toMillis(options.maxAge ?? Duration.days(7)))
          })
        } catch (error) {
          // It exists with another configuration (another runner's, or an operator's): use it if
          // it takes our subjects.
          const info = await jsm.streams.info(stream).catch(() => undefined)
          if (info === undefined || !subjects.every((s) => info.config.subjects.includes(s))) throw error
        }
      },
      catch: (error) => new EventBusError({ operation: "stream", reason: `cannot create stream ${stream}: ${reasonOf(error)}` })
    })
    if (options.deleteStreamOnClose === true) {
      yield* Effect.addFinalizer(() => Effect.promise(() => jsm.streams.delete(stream).catch(() => false)))
    }

    const consumers = new Map<string, Consumer>()
    const consumerFor = (name: string, filter: string, ackWait: Duration.DurationInput) => {
      const cached = consumers.get(name)
      if (cached !== undefined) return Effect.succeed(cached)
      return Effect.tryPromise({
        try: async () => {
          await jsm.consumers.add(stream, {
            durable_name: name,
            ack_policy: AckPolicy.Explicit,
            deliver_policy: DeliverPolicy.All,
            filter_subject: filter,
            max_ack_pending: 1000,
            ack_wait: nanos(Duration.toMillis(ackWait))
          })
          const consumer = await js.consumers.get(stream, name)
          consumers.set(name, consumer)
          return consumer
        },
        catch: (error) =>
          new EventBusError({ operation: "subscribe", reason: `consumer ${name} on ${filter}: ${reasonOf(error)}` })
      })
    }

    const consumersOf = (options: SubscribeOptions) =>
      Effect.flatMap(filtersOf(prefix, options), (filters) =>
        Effect.forEach(filters, (filter) =>
          consumerFor(consumerNameOf(options.durable, filters, filter), filter, options.ackWait ?? Duration.seconds(30))))

    const decoder = new TextDecoder()
    const toDelivery = (msg: JsMsg): Effect.Effect<Option.Option<Delivery>> =>
      decodeEnvelope(decoder.decode(msg.data)).pipe(
        Effect.map((envelope) =>
          Option.some<Delivery>({
            envelope,
            subject: msg.subject,
            deliveryCount: msg.info.deliveryCount,
            ack: Effect.asVoid(Effect.tryPromise({ try: () => msg.ackAck(), catch: fail("ack") })),
            nak: (delay) =>
              Effect.try({
                try: () => msg.nak(delay === undefined ? undefined : Duration.toMillis(delay)),
                catch: fail("nak")
              })
          })
        ),
        // Nothing can ever read it: terminate it so it does not come back, and say so.
        Effect.catchAll((error) =>
          Effect.logError("undecodable event on the bus; terminated").pipe(
            Effect.annotateLogs({ subject: msg.subject, stream_seq: msg.seq, error: ParseResult.TreeFormatter.formatErrorSync(error) }),
            Effect.zipRight(Effect.sync(() => msg.term("undecodable envelope"))),
            Effect.as(Option.none())
          )
        )
      )

    const service: EventBus["Type"] = {
      prefix,
      publish: (envelope) =>
        Effect.gen(function*() {
          const subject = yield* subjectOf(prefix, envelope)
          const json = yield* encodeEnvelope(envelope)
          const ack = yield* Effect.tryPromise({
            try: () => js.publish(subject, json, { msgID: envelope.event_id, expect: { streamName: stream } }),
            catch: (error) =>
              new EventBusError({ operation: "publish", reason: `event ${envelope.event_id} to ${subject}: ${reasonOf(error)}` })
          })
          if (ack.duplicate) {
            yield* Effect.logDebug("duplicate event dropped by JetStream").pipe(
              Effect.annotateLogs({ event_id: envelope.event_id, tenant_id: envelope.tenant_id })
            )
          }
        }),

      // Each JetStream consumer is pulled in a loop of bounded pulls (`pullExpiresMillis`, up to 256
      // messages); deliveries land in one mailbox and are taken one at a time (across several
      // filters, in arrival order). Stopping never cancels a pull on the wire: a pull cancelled
      // client-side (unsubscribing its inbox) drops the messages the server already sent it, and
      // those stay pending until the ack wait runs out. Instead the stream lets each outstanding
      // pull end, then hands back (nak) everything it received but did not give out, for
      // immediate redelivery. Stopping therefore takes up to `pullExpiresMillis`.
      subscribe: (options) =>
        Stream.unwrapScoped(Effect.gen(function*() {
          const found = yield* consumersOf(options)
          const mailbox = yield* Mailbox.make<JsMsg, EventBusError>()
          let stopping = false
          const pullOnce = (consumer: Consumer) =>
            Effect.tryPromise({
              try: async () => {
                const late: Array<JsMsg> = []
                try {
                  const batch = await consumer.fetch({ max_messages: 256, expires: pullExpiresMillis })
                  for await (const msg of batch) {
                    if (stopping) late.push(msg)
                    else mailbox.unsafeOffer(msg)
                  }
                } finally {
                  // Arrived after the stream stopped. Handed back only now that this pull is over,
                  // so the redelivery goes to the next consumer of the durable, not to this pull.
                  for (const msg of late) msg.nak()
                }
              },
              catch: fail("subscribe")
            })
          const pullLoop = (consumer: Consumer) =>
            pullOnce(consumer).pipe(
              // A failed pull (a reconnect, a server restart) is retried a few times before the
              // stream fails; real time, not the test clock.
              Effect.retry({ schedule: Schedule.exponential("200 millis"), times: 4, while: () => !stopping }),
              Effect.repeat({ while: () => !stopping }),
              Effect.catchAll((error) => Effect.sync(() => mailbox.unsafeDone(Exit.fail(error)))),
              Effect.withClock(liveClock)
            )
          const loops = yield* Effect.forEach(found, (consumer) => Effect.forkDaemon(pullLoop(consumer)))
          yield* Effect.addFinalizer(() =>
            Effect.gen(function*() {
              stopping = true
              yield* Fiber.awaitAll(loops).pipe(
                Effect.timeout(pullExpiresMillis + 5000),
                Effect.ignore,
                Effect.withClock(liveClock)
              )
              yield* Fiber.interruptAll(loops)
              const left = yield* mailbox.clear
              Chunk.forEach(left, (msg) => msg.nak())
            }).pipe(Effect.ignore)
          )
          return Stream.repeatEffectOption(
            mailbox.take.pipe(
              Effect.mapError((error) => error._tag === "EventBusError" ? Option.some(error) : Option.none()),
              Effect.flatMap(toDelivery)
            )
          ).pipe(Stream.filterMap((delivery) => delivery))
        })),

      // With several filters the JetStream consumers are asked together; deliveries beyond `max`
      // are handed back (nak) for immediate redelivery.
      fetch: (options) =>
        Effect.gen(function*() {
          const found = yield* consumersOf(options)
          if (options.max <= 0) return []
          const expires = Math.max(1000, Duration.toMillis(options.expires))
          const batches = yield* Effect.forEach(found, (consumer) =>
            Effect.tryPromise({
              try: async () => {
                const batch = await consumer.fetch({ max_messages: options.max, expires })
                const got: Array<JsMsg> = []
                for await (const msg of batch) got.push(msg)
                return got
              },
              catch: fail("fetch")
            }), { concurrency: "unbounded" })
          const msgs = batches.flat()
          // One consumer's batch is in stream order; across consumers, order by stream sequence.
          if (batches.length > 1) msgs.sort((a, b) => a.seq - b.seq)
          for (const extra of msgs.splice(options.max)) extra.nak()
          const out: Array<Delivery> = []
          for (const msg of msgs) {
            const delivery = yield* toDelivery(msg)
            if (Option.isSome(delivery)) out.push(delivery.value)
          }
          return out
        })
    }
    const tokens: TokenStream["Type"] = {
      publish: (delta) =>
        Effect.suspend(() => {
          const subject = Tokens.subjectOf(prefix, delta)
          if (subject === undefined) return Effect.logWarning("token delta with an invalid tenant or session id; dropped")
          try {
            nc.publish(subject, Tokens.encode(delta))
            return Effect.void
          } catch (error) {
            return Effect.logDebug(`token delta not sent: ${reasonOf(error)}`)
          }
        }).pipe(Effect.annotateLogs({ tenant_id: delta.tenantId, run_id: delta.runId })),
      subscribe: Stream.unwrapScoped(Effect.gen(function*() {
        const queue = yield* Effect.acquireRelease(Queue.sliding<Tokens.TokenDelta>(Tokens.subscriberCapacity), Queue.shutdown)
        yield* Effect.acquireRelease(
          Effect.try({
            try: () =>
              nc.subscribe(Tokens.allSubjects(prefix), {
                callback: (error, msg) => {
                  if (error !== null) return
                  const delta = Tokens.decode(decoder.decode(msg.data))
                  if (Option.isSome(delta)) queue.unsafeOffer(delta.value)
                }
              }),
            catch: fail("subscribe")
          }),
          (subscription) => Effect.sync(() => subscription.unsubscribe())
        )
        // The server has the subscription once the connection is flushed.
        yield* Effect.tryPromise({ try: () => nc.flush(), catch: fail("subscribe") })
        return Stream.fromQueue(queue)
      }))
    }
    return { bus: service, tokens }
  })

/**
 * A connected JetStream bus and its token channel; the stream is ensured on start and the
 * connection drained on close.
 */
export const layer = (options: Options): Layer.Layer<EventBus | TokenStream, EventBusError> =>
  Layer.scopedContext(Effect.map(make(options), ({ bus, tokens }) => Context.make(EventBus, bus).pipe(Context.add(TokenStream, tokens))))

/** `NATS_URL` (required), `NATS_STREAM_PREFIX` (default "tessera"). */
export const layerConfig: Layer.Layer<EventBus | TokenStream, EventBusError | ConfigError> = Layer.unwrapEffect(
  Effect.gen(function*() {
    const servers = yield* Config.redacted("NATS_URL")
    const prefix = yield* Config.string("NATS_STREAM_PREFIX").pipe(Config.withDefault(defaultPrefix))
    return layer({ servers: Redacted.value(servers), prefix })
  })
)
