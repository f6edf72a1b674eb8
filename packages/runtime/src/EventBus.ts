/**
 * The event bus port. Events leave Postgres through the outbox relay and reach consumers through
 * an `EventBus`: JetStream in production (`NatsEventBus`), an in-process log for tests and
 * single-node development (`MemoryEventBus`).
 *
 * The contract both adapters keep:
 * - `publish` is idempotent by `event_id`: the same event published twice within the duplicate
 *   window is stored (and delivered) once.
 * - The subject on the wire is `<prefix>.<tenant_id>.<event_type>` (prefix "tessera" unless
 *   configured), so a consumer can take one tenant or all of them; the payload is the JSON of the
 *   domain `EventEnvelope`.
 * - Consumers are durable: a consumer named again continues after its last acknowledged event.
 *   A delivery not acknowledged within `ackWait`, or negatively acknowledged, is delivered again.
 */
import { type EventEnvelope, EventEnvelopeJson } from "@tessera/domain/Event"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type * as Stream from "effect/Stream"

/** The bus refused or failed an operation; it did not take effect. */
export class EventBusError extends Schema.TaggedError<EventBusError>()("EventBusError", {
  operation: Schema.Literal("connect", "stream", "publish", "subscribe", "fetch", "ack", "nak", "close"),
  reason: Schema.String
}) {
  readonly code = "event_bus_unavailable"
  override get message() {
    return `event bus ${this.operation} failed: ${this.reason}`
  }
}

export interface SubscribeOptions {
  /** The durable consumer's name: `A-Z a-z 0-9 _ -`. The same name continues where it left off. */
  readonly durable: string
  /** Event types, NATS-style wildcards allowed: `agent.run.completed`, `agent.run.*`, `tool.>`. */
  readonly subjects: ReadonlyArray<string>
  /** Only this tenant's events; all tenants when absent. */
  readonly tenantId?: string
  /** How long a delivery may stay unacknowledged before it is delivered again (default 30 s). */
  readonly ackWait?: Duration.DurationInput
}

export interface FetchOptions extends SubscribeOptions {
  /** At most this many deliveries. */
  readonly max: number
  /** How long to wait for the first delivery when none is ready (JetStream's minimum is 1 s). */
  readonly expires: Duration.DurationInput
}

/** One delivery of one event to one durable consumer. */
export interface Delivery {
  readonly envelope: EventEnvelope
  /** The wire subject, `<prefix>.<tenant_id>.<event_type>`. */
  readonly subject: string
  /** 1 on the first delivery, then 2, 3, … on redeliveries. */
  readonly deliveryCount: number
  /** Done with it: it will not be delivered to this consumer again. */
  readonly ack: Effect.Effect<void, EventBusError>
  /** Not done: deliver it again after `delay` (immediately when absent). */
  readonly nak: (delay?: Duration.DurationInput) => Effect.Effect<void, EventBusError>
}

export class EventBus extends Context.Tag("@tessera/runtime/EventBus")<EventBus, {
  /** The subject prefix of this deployment. */
  readonly prefix: string
  /** Stores the event once per `event_id` (within the duplicate window). */
  readonly publish: (envelope: EventEnvelope) => Effect.Effect<void, EventBusError>
  /** An endless stream of deliveries for a durable consumer; ends when the stream is interrupted. */
  readonly subscribe: (options: SubscribeOptions) => Stream.Stream<Delivery, EventBusError>
  /** One batch of up to `max` deliveries, waiting at most `expires` for the first one. */
  readonly fetch: (options: FetchOptions) => Effect.Effect<ReadonlyArray<Delivery>, EventBusError>
}>() {}

export const defaultPrefix = "tessera"

// --- the wire contract, shared by the adapters -------------------------------------------------

const token = /^[A-Za-z0-9_-]+$/

/** `<prefix>.<tenant_id>.<event_type>`; fails when the tenant id cannot be one subject token. */
export const subjectOf = (prefix: string, envelope: EventEnvelope): Effect.Effect<string, EventBusError> =>
  token.test(envelope.tenant_id)
    ? Effect.succeed(`${prefix}.${envelope.tenant_id}.${envelope.event_type}`)
    : Effect.fail(
      new EventBusError({
        operation: "publish",
        reason: `tenant id ${JSON.stringify(envelope.tenant_id)} of event ${envelope.event_id} is not a valid subject token`
      })
    )

/** Checks a consumer's options and returns its wire filters, one per event-type pattern. */
export const filtersOf = (
  prefix: string,
  options: SubscribeOptions
): Effect.Effect<ReadonlyArray<string>, EventBusError> => {
  const invalid = (reason: string) => Effect.fail(new EventBusError({ operation: "subscribe", reason }))
  if (!token.test(options.durable)) {
    return invalid(`durable name ${JSON.stringify(options.durable)} must be letters, digits, '_' or '-'`)
  }
  if (options.tenantId !== undefined && !token.test(options.tenantId)) {
    return invalid(`tenant id ${JSON.stringify(options.tenantId)} is not a valid subject token`)
  }
  if (options.subjects.length === 0) {
    return invalid("a consumer needs at least one subject")
  }
  for (const subject of options.subjects) {
    const parts = subject.split(".")
    const ok = parts.every((part, i) =>
      part === "*" || (part === ">" && i === parts.length - 1) || token.test(part)
    )
    if (!ok) return invalid(`subject ${JSON.stringify(subject)} is not an event type pattern`)
  }
  const tenant = options.tenantId ?? "*"
  return Effect.succeed(Array.from(new Set(options.subjects), (subject) => `${prefix}.${tenant}.${subject}`))
}

/** NATS subject matching: `*` is one token, a final `>` is one or more. */
export const subjectMatches = (filter: string, subject: string): boolean => {
  const f = filter.split(".")
  const s = subject.split(".")
  for (let i = 0; i < f.length; i++) {
    if (f[i] === ">") return s.length > i
    if (i >= s.length) return false
    if (f[i] !== "*" && f[i] !== s[i]) return false
  }
  return f.length === s.length
}

const encodeJson = Schema.encode(EventEnvelopeJson)
const decodeJson = Schema.decodeUnknown(EventEnvelopeJson)

/** The envelope as it travels: its schema-encoded JSON. */
export const encodeEnvelope = (envelope: EventEnvelope): Effect.Effect<string, EventBusError> =>
  encodeJson(envelope).pipe(
    Effect.mapError((error) =>
      new EventBusError({ operation: "publish", reason: `cannot encode event ${envelope.event_id}: ${ParseResult.TreeFormatter.formatErrorSync(error)}` })
    )
  )

export const decodeEnvelope = (json: string): Effect.Effect<EventEnvelope, ParseResult.ParseError> => decodeJson(json)
