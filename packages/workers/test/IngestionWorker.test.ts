/**
 * The ingestion worker against the real NATS (a stream and prefix of this file's own) and the
 * real Postgres (a fresh database): each document is indexed once across a worker restart, and
 * a poison request ends on the dead-letter subject without blocking the ones behind it.
 */
import { assert, describe, it } from "@effect/vitest"
import { EventEnvelope } from "@tessera/domain/Event"
import { TenantId } from "@tessera/domain/Ids"
import { Database } from "@tessera/runtime/Database"
import { type Delivery, EventBus } from "@tessera/runtime/EventBus"
import * as KnowledgeStore from "@tessera/runtime/KnowledgeStore"
import * as LocalEmbedder from "@tessera/runtime/LocalEmbedder"
import * as NatsEventBus from "@tessera/runtime/NatsEventBus"
import * as PgVectorStore from "@tessera/runtime/PgVectorStore"
import * as TestDatabase from "@tessera/runtime/TestDatabase"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { randomBytes } from "node:crypto"
import * as IngestionWorker from "../src/IngestionWorker.js"

const suffix = randomBytes(5).toString("hex")
const natsUrl = process.env.NATS_URL ?? "nats://127.0.0.1:4222"
const tenantId = TenantId.make("shop")

const Bus = NatsEventBus.layer({ servers: natsUrl, prefix: `ingest${suffix}`, stream: `TEST_INGEST_${suffix}`, deleteStreamOnClose: true })

const Store = KnowledgeStore.layer.pipe(
  Layer.provide(PgVectorStore.layer), Layer.provide(LocalEmbedder.layer),
  Layer.provideMerge(TestDatabase.layer)
)

const worker = IngestionWorker.layer({ retryDelays: ["100 millis", "100 millis"] })

const request = (eventId: string, payload: unknown) =>
  new EventEnvelope({
    event_type: "ingest.doc.requested",
    event_id: eventId,
    timestamp: DateTime.unsafeNow(),
    tenant_id: tenantId,
    user_id: null,
    run_id: null,
    workflow: null,
    tier: null,
    metadata: {},
    payload
  })

const doc = (key: string, content: string) => ({ sourceKey: key, title: key, format: "markdown", content })

/** Outcome events seen by a consumer of this file, until `done` holds (bounded by a real deadline). */
const outcomes = (durable: string, done: (events: ReadonlyArray<Delivery>) => boolean) =>
  Effect.gen(function*() {
    const bus = yield* EventBus
    const seen: Array<Delivery> = []
    while (!done(seen)) {
      const batch = yield* bus.fetch({
        durable,
        subjects: ["ingest.doc.processed", "ingest.doc.deadlettered"],
        max: 100,
        expires: "2 seconds"
      })
      for (const delivery of batch) {
        seen.push(delivery)
        yield* delivery.ack
      }
    }
    return seen
  }).pipe(Effect.timeout("60 seconds"))

const tenantSeeded = Effect.gen(function*() {
  const db = yield* Database
  yield* db.tenant(tenantId)(db.sql`INSERT INTO tenants (tenant_id, name, plan, limits) VALUES (${tenantId}, 'Shop', 'free', '{}') ON CONFLICT DO NOTHING`)
})

describe("IngestionWorker", () => {
  it.live("indexes each document once across a worker restart; a poison request is dead-lettered", () =>
      Effect.gen(function*() {
        yield* tenantSeeded
        const bus = yield* EventBus
        yield* bus.publish(request("r1", doc("returns", "# Returns\n\nYou can return items within 30 days.")))
        yield* bus.publish(request("poison", { not: "a document" }))
        yield* bus.publish(request("r2", doc("shipping", "# Shipping\n\nStandard shipping takes 3 to 5 business days.")))

        // First worker: r1 and r2 processed, the poison one dead-lettered; then it stops.
        const first = yield* Effect.scoped(Effect.zipRight(
          Layer.build(worker),
          outcomes("observer", (seen) => seen.length >= 3)
        ))
        const types = first.map((d) => `${d.envelope.event_type}:${String(d.envelope.metadata.request_event_id)}`).sort()
        assert.deepStrictEqual(types, ["ingest.doc.deadlettered:poison", "ingest.doc.processed:r1", "ingest.doc.processed:r2"])
        const dead = first.find((d) => d.envelope.event_type === "ingest.doc.deadlettered")!
        assert.match(JSON.stringify(dead.envelope.payload), /payload is not a document/)

        // A restarted worker on the same durable consumer continues after what it acknowledged.
        yield* bus.publish(request("r3", doc("returns-again", "# Returns\n\nYou can return items within 30 days.")))
        const second = yield* Effect.scoped(Effect.zipRight(
          Layer.build(worker),
          outcomes("observer", (seen) => seen.length >= 1)
        ))
        assert.deepStrictEqual(second.map((d) => String(d.envelope.metadata.request_event_id)), ["r3"])
        // r3 has r1's content: the same document, not a second one.
        assert.deepInclude(second[0]!.envelope.payload, { created: false })

        const db = yield* Database
        const docs = yield* db.tenant(tenantId)(db.sql<{ source_key: string; chunk_count: number }>`
          SELECT source_key, chunk_count FROM kb_documents ORDER BY source_key`)
        assert.deepStrictEqual(docs.map((d) => d.source_key), ["returns", "shipping"])
        assert.isTrue(docs.every((d) => d.chunk_count > 0))
      }).pipe(Effect.provide(Layer.merge(Store, Bus))), { timeout: 120_000 })
})
