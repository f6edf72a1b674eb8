import * as Schema from "effect/Schema"

/** The subjects Tessera publishes. Each is also a NATS subject (prefixed per deployment). */
export const EventType = Schema.Literal(
  "agent.run.requested",
  "agent.run.started",
  "agent.run.completed",
  "agent.run.failed",
  "agent.run.cancelled",
  "tool.call.requested",
  "tool.call.succeeded",
  "tool.call.failed",
  "ingest.doc.requested",
  "ingest.doc.processed",
  "ingest.doc.deadlettered",
  "usage.metered",
  "billing.invoice.generated"
)
export type EventType = typeof EventType.Type

/**
 * The seed systems' event envelope, snake_case on the wire. `event_id` is the idempotency key:
 * it is built from ids (never from a clock), doubles as the outbox primary key and as NATS's
 * `Nats-Msg-Id`, so a republished event is dropped by the broker's dedupe window.
 */
export class EventEnvelope extends Schema.Class<EventEnvelope>("EventEnvelope")({
  event_type: EventType,
  event_id: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(200)),
  timestamp: Schema.DateTimeUtc,
  tenant_id: Schema.String,
  user_id: Schema.NullOr(Schema.String),
  run_id: Schema.NullOr(Schema.String),
  workflow: Schema.NullOr(Schema.String),
  tier: Schema.NullOr(Schema.String),
  metadata: Schema.Record({ key: Schema.String, value: Schema.Unknown }),
  payload: Schema.Unknown
}) {}

export const EventEnvelopeJson = Schema.parseJson(EventEnvelope)
