/**
 * The transactional outbox. A state change and its events commit together: `append` must run
 * inside the same `Database.tenant` transaction as the change. The relay (OutboxRelay) publishes
 * unpublished rows to the event bus and marks them; a crash between publish and mark republishes
 * with the same `event_id`, which the bus deduplicates.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { EventEnvelope } from "@tessera/domain/Event"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"

/**
 * The envelope's JSON form (what `Schema.encode(EventEnvelope)` answers). An envelope was checked
 * when it was made, and only its timestamp has an encoding of its own, so the fields are copied
 * rather than run through the schema again: a run writes several events per step.
 */
export const encode = (event: EventEnvelope): typeof EventEnvelope.Encoded => ({
  event_type: event.event_type,
  event_id: event.event_id,
  timestamp: DateTime.formatIso(event.timestamp),
  tenant_id: event.tenant_id,
  user_id: event.user_id,
  run_id: event.run_id,
  workflow: event.workflow,
  tier: event.tier,
  metadata: event.metadata,
  payload: event.payload
})

/** The outbox row of an event, for statements that write it together with their state change. */
export const row = (event: EventEnvelope) => ({
  tenant_id: event.tenant_id,
  event_id: event.event_id,
  subject: event.event_type,
  envelope: JSON.stringify(encode(event))
})

export const append = (events: ReadonlyArray<EventEnvelope>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    events.length === 0
      ? Effect.void
      : sql`INSERT INTO outbox ${sql.insert(events.map(row))} ON CONFLICT (event_id) DO NOTHING`)
