import { assert, describe, it } from "@effect/vitest"
import { EventEnvelope, type EventType } from "@tessera/domain/Event"
import * as Chunk from "effect/Chunk"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import { EventBus } from "../src/EventBus.js"
import * as MemoryEventBus from "../src/MemoryEventBus.js"

const event = (eventId: string, tenantId = "tenant_a", eventType: EventType = "agent.run.completed") =>
  new EventEnvelope({
    event_type: eventType,
    event_id: eventId,
    timestamp: DateTime.unsafeMake(0),
    tenant_id: tenantId,
    user_id: null,
    run_id: "run_1",
    workflow: "echo",
    tier: null,
    metadata: {},
    payload: { ok: true }
  })

const ids = (deliveries: ReadonlyArray<{ readonly envelope: EventEnvelope }>) => deliveries.map((d) => d.envelope.event_id)

describe("MemoryEventBus", () => {
  it.effect("the log keeps what a consumer still needs and drops what every consumer acknowledged", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus
      const options = { durable: "all", subjects: ["agent.run.*"], ackWait: "10 seconds" } as const
      yield* bus.fetch({ ...options, max: 1, expires: 0 })
      // 2,048 events (two trimming rounds); the consumer acknowledges all but the third.
      for (let i = 1; i <= 2048; i++) yield* bus.publish(event(`e${i}`))
      const all = yield* bus.fetch({ ...options, max: 5000, expires: 0 })
      assert.strictEqual(all.length, 2048)
      yield* Effect.forEach(all.filter((d) => d.envelope.event_id !== "e3"), (d) => d.ack)
      for (let i = 2049; i <= 3072; i++) yield* bus.publish(event(`e${i}`))

      // A consumer created now starts at the oldest event kept: e3, still unacknowledged.
      const late = yield* bus.fetch({ durable: "late", subjects: ["agent.run.*"], max: 5000, expires: 0 })
      assert.deepStrictEqual(ids(late.slice(0, 2)), ["e3", "e4"])
      assert.strictEqual(late.length, 3070)
      // And e3 comes back to the first consumer when its ack wait passes.
      yield* TestClock.adjust("10 seconds")
      const again = yield* bus.fetch({ ...options, max: 1, expires: 0 })
      assert.deepStrictEqual(ids(again), ["e3"])
    }).pipe(Effect.provide(MemoryEventBus.layer)))

  it.effect("past maxEntries the oldest events go, whatever the consumers", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus
      const options = { durable: "slow", subjects: ["agent.run.*"], max: 100, expires: 0 } as const
      yield* bus.fetch({ ...options, max: 0 })
      for (let i = 1; i <= 25; i++) yield* bus.publish(event(`e${i}`))
      const kept = yield* bus.fetch(options)
      assert.deepStrictEqual(ids(kept), Array.from({ length: 10 }, (_, i) => `e${16 + i}`))
    }).pipe(Effect.provide(MemoryEventBus.layerWith({ maxEntries: 10 }))))

  it.effect("drops a republished event_id within the duplicate window, not after it", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus
      yield* bus.publish(event("e1"))
      yield* bus.publish(event("e1"))
      yield* bus.publish(event("e2"))
      const first = yield* bus.fetch({ durable: "d", subjects: ["agent.run.*"], max: 10, expires: 0 })
      assert.deepStrictEqual(ids(first), ["e1", "e2"])
      assert.strictEqual(first[0]!.subject, "tessera.tenant_a.agent.run.completed")
      yield* Effect.forEach(first, (d) => d.ack)

      yield* TestClock.adjust("2 minutes")
      yield* bus.publish(event("e1"))
      const later = yield* bus.fetch({ durable: "d", subjects: ["agent.run.*"], max: 10, expires: 0 })
      assert.deepStrictEqual(ids(later), ["e1"])
    }).pipe(Effect.provide(MemoryEventBus.layer)))

  it.effect("a durable consumer continues where it left off; unacknowledged events come back", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus
      for (const id of ["e1", "e2", "e3"]) yield* bus.publish(event(id))
      yield* bus.publish(event("other", "tenant_a", "tool.call.failed"))

      const options = { durable: "runs", subjects: ["agent.run.completed"], ackWait: "10 seconds" } as const
      const firstTwo = yield* Stream.runCollect(Stream.take(bus.subscribe(options), 2))
      assert.deepStrictEqual(ids(Chunk.toReadonlyArray(firstTwo)), ["e1", "e2"])
      yield* Chunk.unsafeGet(firstTwo, 0).ack

      // A new subscription under the same name resumes after e2; e2 (never acked) is still in flight.
      const next = yield* bus.fetch({ ...options, max: 10, expires: 0 })
      assert.deepStrictEqual(ids(next), ["e3"])
      yield* next[0]!.nak("5 seconds")
      assert.strictEqual((yield* bus.fetch({ ...options, max: 10, expires: 0 })).length, 0)

      yield* TestClock.adjust("5 seconds")
      const naked = yield* bus.fetch({ ...options, max: 10, expires: 0 })
      assert.deepStrictEqual(naked.map((d) => [d.envelope.event_id, d.deliveryCount]), [["e3", 2]])
      yield* naked[0]!.ack

      yield* TestClock.adjust("5 seconds")
      const expired = yield* bus.fetch({ ...options, max: 10, expires: 0 })
      assert.deepStrictEqual(expired.map((d) => [d.envelope.event_id, d.deliveryCount]), [["e2", 2]])
      yield* expired[0]!.ack

      // A fresh consumer name starts from the beginning.
      const fresh = yield* bus.fetch({ durable: "audit", subjects: [">"], max: 10, expires: 0 })
      assert.deepStrictEqual(ids(fresh), ["e1", "e2", "e3", "other"])
    }).pipe(Effect.provide(MemoryEventBus.layer)))

  it.effect("a waiting subscriber wakes on publish, and filters by tenant", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus
      const fiber = yield* Effect.fork(
        Stream.runCollect(Stream.take(bus.subscribe({ durable: "only_b", subjects: [">"], tenantId: "tenant_b" }), 1))
      )
      yield* Effect.yieldNow()
      yield* bus.publish(event("a1", "tenant_a"))
      yield* bus.publish(event("b1", "tenant_b"))
      const got = yield* Fiber.join(fiber)
      assert.deepStrictEqual(ids(Chunk.toReadonlyArray(got)), ["b1"])
    }).pipe(Effect.provide(MemoryEventBus.layer)))

  it.effect("rejects a bad durable name and a tenant id that is not a subject token", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus
      const badName = yield* Effect.flip(bus.fetch({ durable: "a.b", subjects: [">"], max: 1, expires: 0 }))
      assert.strictEqual(badName.code, "event_bus_unavailable")
      assert.strictEqual(badName.operation, "subscribe")
      const badTenant = yield* Effect.flip(bus.publish(event("x", "tenant.*")))
      assert.strictEqual(badTenant.operation, "publish")
    }).pipe(Effect.provide(MemoryEventBus.layer)))
})
