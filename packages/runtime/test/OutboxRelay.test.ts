/**
 * The outbox relay against the real Postgres (a fresh database for this file) and the real NATS
 * at `NATS_URL` (a stream and subject prefix of this file's own, deleted at the end).
 *
 * Waiting for the broker is broker I/O, never a sleep: an expected event is waited for until it
 * arrives (pulls with a generous expiry, bounded by a real-time deadline), and only then is a short
 * pull used to check that nothing else (no duplicate) follows. A short window is never taken as
 * "nothing will arrive" when something is expected: under load, delivery can take longer.
 */
import { assert, describe, it } from "@effect/vitest"
import { EventEnvelope, type EventType } from "@tessera/domain/Event"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import { randomBytes } from "node:crypto"
import { Database } from "../src/Database.js"
import { type Delivery, EventBus, type SubscribeOptions } from "../src/EventBus.js"
import * as NatsEventBus from "../src/NatsEventBus.js"
import * as Outbox from "../src/Outbox.js"
import * as OutboxRelay from "../src/OutboxRelay.js"
import * as RunJournal from "../src/RunJournal.js"
import * as TestDatabase from "../src/TestDatabase.js"

const suffix = randomBytes(5).toString("hex")
const prefix = `test${suffix}`
const stream = `TEST_OUTBOX_${suffix}`

const natsUrl = Config.string("NATS_URL").pipe(Config.withDefault("nats://127.0.0.1:4222"))

const busLayer = Layer.unwrapEffect(
  Effect.map(natsUrl, (servers) => NatsEventBus.layer({ servers, prefix, stream, deleteStreamOnClose: true }))
).pipe(Layer.orDie)

const event = (tenantId: string, eventId: string, eventType: EventType = "agent.run.completed") =>
  new EventEnvelope({
    event_type: eventType,
    event_id: eventId,
    timestamp: DateTime.unsafeMake(0),
    tenant_id: tenantId,
    user_id: "u1",
    run_id: "run_1",
    workflow: "echo",
    tier: null,
    metadata: {},
    payload: { answer: 42 }
  })

/** An envelope as the outbox stores it. */
const encode = Schema.encodeSync(EventEnvelope)

/** A tenant row and its events, committed together (or not at all). */
const createTenant = (tenantId: string, events: ReadonlyArray<EventEnvelope>) =>
  Effect.gen(function*() {
    const db = yield* Database
    const sql = db.sql
    yield* sql`INSERT INTO plans (name, limits) VALUES ('free', '{}') ON CONFLICT DO NOTHING`
    yield* db.tenant(tenantId)(Effect.gen(function*() {
      yield* sql`INSERT INTO tenants (tenant_id, name, plan, limits) VALUES (${tenantId}, ${tenantId}, 'free', '{}')`
      yield* Outbox.append(events.map((e) => encode(e)))
    }))
  })

/**
 * The row's published flag, read `FOR UPDATE`: this waits for a relay transaction that holds the
 * row (published but not yet committed) to end, so it reads the relay's outcome, not a race.
 */
const outboxRow = (eventId: string) =>
  Effect.flatMap(Database, (db) =>
    db.system(
      db.sql<{ published: boolean }>`SELECT published_at IS NOT NULL AS published FROM outbox WHERE event_id = ${eventId} FOR UPDATE`
    )
  )

/** A real-time deadline (the tests run on the test clock, which never advances by itself). */
const within = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(
    Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => new Error("no delivery within 30 seconds") }),
    Effect.withClock(Clock.make())
  )

/** A short pull for what is left, acknowledged: only for checking that nothing (more) arrives. */
const rest = (options: SubscribeOptions) =>
  Effect.gen(function*() {
    const bus = yield* EventBus
    const all: Array<Delivery> = []
    for (let i = 0; i < 20; i++) {
      const batch = yield* bus.fetch({ ...options, max: 100, expires: "1 second" })
      if (batch.length === 0) break
      yield* Effect.forEach(batch, (delivery) => delivery.ack)
      all.push(...batch)
    }
    return all
  })

/**
 * Deliveries, acknowledged, until `done` holds of them: an empty pull only means "not yet", so it
 * pulls again, as long as it takes within the deadline. A pull asks for one delivery, so it returns
 * as soon as one is there.
 */
const receiveUntil = (options: SubscribeOptions, done: (received: ReadonlyArray<Delivery>) => boolean) =>
  within(Effect.gen(function*() {
    const bus = yield* EventBus
    const all: Array<Delivery> = []
    while (!done(all)) {
      const batch = yield* bus.fetch({ ...options, max: 1, expires: "1 second" })
      yield* Effect.forEach(batch, (delivery) => delivery.ack)
      all.push(...batch)
    }
    return all
  }))

/** Waits for `count` deliveries, then checks with a short pull that no more (no duplicate) follow. */
const receiveExactly = (options: SubscribeOptions, count: number) =>
  Effect.gen(function*() {
    const expected = yield* receiveUntil(options, (received) => received.length >= count)
    return [...expected, ...(yield* rest(options))]
  })

const ids = (deliveries: ReadonlyArray<Delivery>) => deliveries.map((d) => d.envelope.event_id)

describe("Outbox rows", () => {
  it("carry a run's events in exactly the envelope schema's encoding", () => {
    const run = {
      tenant_id: "t1",
      id: "run_1",
      session_id: null,
      user_id: "u1",
      workflow: "echo",
      status: "started" as const,
      input: {},
      output: null,
      error: null,
      attempts: 1,
      created_at: new Date(),
      updated_at: new Date()
    }
    const encoded = RunJournal.event(run, "tool.call.succeeded", { nested: [1, "two", null] }, "tool.call.succeeded:s1")
    const envelope = Schema.decodeUnknownSync(EventEnvelope)(encoded)
    assert.strictEqual(envelope.event_id, "t1:run_1:tool.call.succeeded:s1")
    assert.deepStrictEqual(Schema.encodeSync(EventEnvelope)(envelope), encoded)
    assert.deepStrictEqual(JSON.parse(Outbox.row(encoded).envelope), encoded)
  })
})

describe("OutboxRelay with Postgres and JetStream", () => {
  it.layer(Layer.merge(TestDatabase.layer, busLayer), { timeout: "60 seconds" })((it) => {
    it.effect("an event committed with its state change reaches a durable consumer exactly once, across a relay crash", () =>
      Effect.gen(function*() {
        const eventId = "acme:run_1:completed"
        yield* createTenant("acme", [event("acme", eventId)])
        assert.deepStrictEqual(yield* outboxRow(eventId), [{ published: false }])

        // The relay publishes, then dies before marking: the marks roll back with it.
        const crashed = yield* Effect.exit(OutboxRelay.relayOnce({ beforeMark: Effect.dieMessage("crash after publish") }))
        assert.isTrue(Exit.isFailure(crashed))
        assert.deepStrictEqual(yield* outboxRow(eventId), [{ published: false }])
        // …but the event did reach the broker.
        const beforeRestart = yield* receiveExactly({ durable: "acme_early", subjects: ["agent.run.*"], tenantId: "acme" }, 1)
        assert.deepStrictEqual(ids(beforeRestart), [eventId])

        // A fresh relay republishes the same event_id; JetStream drops the duplicate.
        const published = yield* OutboxRelay.relayOnce()
        assert.strictEqual(published, 1)
        assert.deepStrictEqual(yield* outboxRow(eventId), [{ published: true }])
        assert.strictEqual(yield* OutboxRelay.relayOnce(), 0)

        assert.deepStrictEqual(ids(yield* rest({ durable: "acme_early", subjects: ["agent.run.*"], tenantId: "acme" })), [])
        const received = yield* receiveExactly({ durable: "acme_runs", subjects: ["agent.run.*"], tenantId: "acme" }, 1)
        assert.deepStrictEqual(ids(received), [eventId])
        assert.strictEqual(received[0]!.subject, `${prefix}.acme.agent.run.completed`)
        assert.strictEqual(received[0]!.deliveryCount, 1)
        assert.deepStrictEqual(received[0]!.envelope.payload, { answer: 42 })
      }))

    it.effect("an event from a rolled-back transaction is never published", () =>
      Effect.gen(function*() {
        const db = yield* Database
        const eventId = "ghost:run_1:completed"
        const failed = yield* db.tenant("ghost")(Effect.gen(function*() {
          yield* db.sql`INSERT INTO tenants (tenant_id, name, plan, limits) VALUES ('ghost', 'ghost', 'free', '{}')`
          yield* Outbox.append([encode(event("ghost", eventId))])
          return yield* Effect.fail("validation failed after the write")
        })).pipe(Effect.flip)
        assert.strictEqual(failed, "validation failed after the write")
        assert.deepStrictEqual(yield* outboxRow(eventId), [])

        yield* OutboxRelay.relayOnce()
        const received = yield* rest({ durable: "ghost_all", subjects: [">"], tenantId: "ghost" })
        assert.deepStrictEqual(ids(received), [])
      }))

    it.effect("poison rows are dead-lettered and never block other events", () =>
      Effect.gen(function*() {
        const db = yield* Database
        const state = (eventId: string) =>
          db.system(db.sql<{ published: boolean; dead: boolean; attempts: number; last_error: string | null }>`
            SELECT published_at IS NOT NULL AS published, dead_at IS NOT NULL AS dead, attempts, last_error
            FROM outbox WHERE event_id = ${eventId}`).pipe(Effect.map((rows) => rows[0]))
        // A row whose envelope does not decode, and a tenant whose id cannot be a subject token.
        yield* db.tenant("poison")(db.sql`INSERT INTO outbox (tenant_id, event_id, subject, envelope)
          VALUES ('poison', 'poison:1', 'agent.run.completed', '{"not":"an envelope"}')`)
        yield* db.tenant("bad.tenant")(Outbox.append([encode(event("bad.tenant", "bt:1")), encode(event("bad.tenant", "bt:2"))]))
        yield* createTenant("after_poison", [event("after_poison", "ap:1")])

        yield* OutboxRelay.relayOnce()
        assert.deepInclude(yield* state("poison:1"), { published: false, dead: true })
        assert.deepInclude(yield* state("bt:1"), { published: false, dead: false, attempts: 1 })
        // The failing tenant's later event waits behind it; other tenants' events go out.
        assert.deepInclude(yield* state("bt:2"), { published: false, attempts: 0 })
        assert.deepInclude(yield* state("ap:1"), { published: true })
        const delivered = yield* receiveExactly({ durable: "after_poison", subjects: [">"], tenantId: "after_poison" }, 1)
        assert.deepStrictEqual(ids(delivered), ["ap:1"])

        for (let i = 1; i < OutboxRelay.maxAttempts * 2; i++) yield* OutboxRelay.relayOnce()
        const bt1 = yield* state("bt:1")
        assert.deepInclude(bt1, { published: false, dead: true, attempts: OutboxRelay.maxAttempts })
        assert.match(bt1?.last_error ?? "", /bad\.tenant/)
        assert.deepInclude(yield* state("bt:2"), { published: false, dead: true })
      }))

    it.effect("a consumer filtered on one tenant does not get another tenant's events", () =>
      Effect.gen(function*() {
        yield* createTenant("tenant_a", [event("tenant_a", "a:1")])
        yield* createTenant("tenant_b", [event("tenant_b", "b:1"), event("tenant_b", "b:2", "tool.call.failed")])
        yield* OutboxRelay.relayOnce()

        const onlyA = yield* receiveExactly({ durable: "only_a", subjects: ["agent.run.*", "tool.call.*"], tenantId: "tenant_a" }, 1)
        assert.deepStrictEqual(ids(onlyA), ["a:1"])
        const onlyB = yield* receiveExactly({ durable: "only_b", subjects: ["agent.run.*", "tool.call.*"], tenantId: "tenant_b" }, 2)
        assert.deepStrictEqual(ids(onlyB).sort(), ["b:1", "b:2"])
        const completedAll = { durable: "completed_all", subjects: ["agent.run.completed"] }
        const everyone = [
          ...(yield* receiveUntil(completedAll, (received) => ["a:1", "b:1"].every((id) => ids(received).includes(id)))),
          ...(yield* rest(completedAll))
        ]
        assert.includeMembers(ids(everyone), ["a:1", "b:1"])
        assert.notInclude(ids(everyone), "b:2")
      }))

    it.effect("concurrent relays publish each row once", () =>
      Effect.gen(function*() {
        const events = Array.from({ length: 30 }, (_, i) => event("busy", `busy:${i}`))
        yield* createTenant("busy", events)
        const relayUntilEmpty = Effect.iterate(0, {
          while: (n) => n >= 0,
          body: (n) => Effect.map(OutboxRelay.relayOnce({ batchSize: 4 }), (k) => k === 0 ? -1 - n : n + k)
        }).pipe(Effect.map((n) => -1 - n))
        const counts = yield* Effect.all([relayUntilEmpty, relayUntilEmpty, relayUntilEmpty], { concurrency: "unbounded" })
        assert.strictEqual(counts.reduce((a, b) => a + b, 0), 30)

        const received = yield* receiveExactly({ durable: "busy_all", subjects: [">"], tenantId: "busy" }, events.length)
        assert.deepStrictEqual(ids(received).sort(), events.map((e) => e.event_id).sort())
      }))

    it.effect("the relay layer publishes in the background on its schedule", () =>
      Effect.gen(function*() {
        yield* createTenant("bg", [event("bg", "bg:1")])
        yield* Layer.build(OutboxRelay.layer({ interval: "200 millis" }))
        // The first tick runs at once; the next one waits for the (test) clock.
        const bgAll = { durable: "bg_all", subjects: [">"], tenantId: "bg" }
        const first = yield* receiveExactly(bgAll, 1)
        assert.deepStrictEqual(ids(first), ["bg:1"])

        yield* Effect.flatMap(Database, (db) =>
          db.tenant("bg")(Outbox.append([encode(event("bg", "bg:2", "agent.run.started"))])))
        // Each step moves the test clock by one interval (the relay may not have gone back to
        // sleep when the clock moved, so one step is not always a tick), then pulls for up to 1 s;
        // an empty pull means "not yet", and the number of steps bounds the whole wait.
        const bus = yield* EventBus
        const later: Array<Delivery> = []
        for (let i = 0; i < 30 && later.length === 0; i++) {
          yield* TestClock.adjust("200 millis")
          const batch = yield* bus.fetch({ ...bgAll, max: 1, expires: "1 second" })
          yield* Effect.forEach(batch, (delivery) => delivery.ack)
          later.push(...batch)
        }
        later.push(...(yield* rest(bgAll)))
        assert.deepStrictEqual(ids(later), ["bg:2"])
        assert.deepStrictEqual(yield* outboxRow("bg:2"), [{ published: true }])
      }).pipe(Effect.scoped))

    it.effect("a restarted durable subscription continues after its last acknowledged event", () =>
      Effect.gen(function*() {
        const bus = yield* EventBus
        yield* bus.publish(event("resume", "resume:1"))
        yield* bus.publish(event("resume", "resume:1"))
        yield* bus.publish(event("resume", "resume:2", "agent.run.failed"))
        const options = { durable: "resume_runs", subjects: ["agent.run.completed", "agent.run.failed"], tenantId: "resume" }

        // The two event types are two JetStream consumers, merged in arrival order: either may come first.
        const first = Chunk.unsafeGet(yield* within(Stream.runCollect(Stream.take(bus.subscribe(options), 1))), 0)
        yield* first.ack
        const firstId = first.envelope.event_id
        assert.include(["resume:1", "resume:2"], firstId)
        const otherId = firstId === "resume:1" ? "resume:2" : "resume:1"

        // Restarted: the other event (handed back when the first subscription stopped), only it.
        const second = Chunk.unsafeGet(yield* within(Stream.runCollect(Stream.take(bus.subscribe(options), 1))), 0)
        yield* second.ack
        assert.strictEqual(second.envelope.event_id, otherId)
        assert.deepStrictEqual(ids(yield* rest(options)), [])
      }))
  })

  it.effect("a bad NATS URL or an unreachable server is an EventBusError that says so", () =>
    Effect.gen(function*() {
      const bad = yield* Effect.flip(Effect.scoped(Layer.build(NatsEventBus.layer({ servers: "not a url" }))))
      assert.strictEqual(bad._tag, "EventBusError")
      assert.strictEqual(bad.operation, "connect")
      assert.match(bad.reason, /invalid NATS server URL/)

      const refused = yield* Effect.flip(
        Effect.scoped(Layer.build(NatsEventBus.layer({ servers: "nats://user:secret@127.0.0.1:1" })))
      )
      assert.strictEqual(refused.operation, "connect")
      assert.match(refused.reason, /cannot connect to nats:\/\/127\.0\.0\.1:1/)
      assert.notMatch(refused.reason, /secret/)
    }))
})
