/**
 * The transactional outbox. A state change and its events commit together: `append` must run
 * inside the same `Database.tenant` transaction as the change. The relay (OutboxRelay) publishes
 * unpublished rows to the event bus and marks them; a crash between publish and mark republishes
 * with the same `event_id`, which the bus deduplicates.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { EventEnvelope } from "@tessera/domain/Event"
import * as Effect from "effect/Effect"

/** The outbox row of an event (in its JSON form), for statements that write it together with their state change. */
export const row = (event: typeof EventEnvelope.Encoded) => ({
  tenant_id: event.tenant_id,
  event_id: event.event_id,
  subject: event.event_type,
  envelope: JSON.stringify(event)
})

export const append = (events: ReadonlyArray<typeof EventEnvelope.Encoded>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    events.length === 0
      ? Effect.void
      : sql`INSERT INTO outbox ${sql.insert(events.map(row))} ON CONFLICT (event_id) DO NOTHING`)
