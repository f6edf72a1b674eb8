/**
 * The WebSocket gateway through a real WebSocket against a started node: chat over the socket
 * with the final answer pushed, malformed and oversized frames answered with error frames on an
 * open connection, resume from the last final frame id, tenant isolation, and a deliberately
 * slow consumer: intermediate frames are dropped (and counted) while it does not read, the
 * final message still arrives.
 */
import { assert, layer } from "@effect/vitest"
import { EventEnvelope } from "@tessera/domain/Event"
import { Database } from "@tessera/runtime/Database"
import { EventBus } from "@tessera/runtime/EventBus"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import * as EdgeNode from "./EdgeNode.js"
import * as WsClient from "./WsClient.js"

const { http, tenant } = EdgeNode

const wsUrl = Effect.map(EdgeNode.Edge, ({ baseUrl }) => `${baseUrl.replace("http", "ws")}/v1/realtime`)

const connect = (key: string) => Effect.flatMap(wsUrl, (url) => WsClient.connect(url, { authorization: `Bearer ${key}` }))

const envelope = (tenantId: string, runId: string, type: "tool.call.succeeded" | "agent.run.completed", i: number, payload: unknown) =>
  new EventEnvelope({
    event_type: type,
    event_id: `${tenantId}:${runId}:${type}:${i}`,
    timestamp: DateTime.unsafeNow(),
    tenant_id: tenantId,
    user_id: "u_slow",
    run_id: runId,
    workflow: "echo",
    tier: null,
    metadata: {},
    payload
  })

const metric = (name: string) =>
  Effect.map(http("GET", "/metrics"), (reply) => {
    const line = reply.text.split("\n").find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`))
    return line === undefined ? 0 : Number(line.split(" ").pop())
  })

layer(
  EdgeNode.layer({ WS_SEND_QUEUE: "32", WS_HIGH_WATER_BYTES: "65536", WS_MAX_FRAME_BYTES: "4096" }),
  { timeout: 120_000, excludeTestServices: true }
)("Realtime", (it) => {
  it.scoped("a chat message over the socket is acknowledged and its answer pushed as the final frame", () =>
    Effect.gen(function*() {
      const alpha = yield* tenant("alpha")
      const client = yield* connect(alpha.key)
      yield* client.send({ type: "send", id: "c1", message: "How long do refunds take?", user_id: "u_ws" })
      const ack = yield* client.waitFor((f) => f.type === "ack" && f.ref === "c1")
      assert.match(String(ack.run_id), /^run_/)
      const final = yield* client.waitFor((f) => f.type === "message" && f.run_id === ack.run_id)
      assert.match(final.id, /^f_\d+$/)
      const answer = final.answer as Record<string, unknown>
      assert.strictEqual(answer.run_id, ack.run_id)
      assert.strictEqual(answer.status, "completed")
      assert.isTrue(String(answer.answer).length > 0)
    }))

  it.scoped("malformed, unknown and oversized frames get error frames; the connection stays open", () =>
    Effect.gen(function*() {
      const alpha = yield* tenant("alpha")
      const client = yield* connect(alpha.key)
      yield* client.send("{not json")
      assert.strictEqual((yield* client.waitFor((f) => f.type === "error" && f.code === "malformed_json")).ref, null)
      yield* client.send({ type: "teleport", id: "x1" })
      assert.strictEqual((yield* client.waitFor((f) => f.type === "error" && f.ref === "x1")).code, "invalid_frame")
      yield* client.send({ type: "send", id: "x2", message: "hi" })
      const missing = yield* client.waitFor((f) => f.type === "error" && f.ref === "x2")
      assert.include(String(missing.message), "user_id")
      yield* client.send({ type: "send", id: "x3", message: "y".repeat(5000), user_id: "u" })
      assert.strictEqual((yield* client.waitFor((f) => f.type === "error" && f.code === "frame_too_large")).ref, null)
      yield* client.send({ type: "ping", id: "p1" })
      yield* client.waitFor((f) => f.type === "pong" && f.ref === "p1")
    }))

  it.scoped("no credential, no upgrade: 401; another tenant's session cannot be subscribed", () =>
    Effect.gen(function*() {
      const refused = yield* Effect.flip(Effect.flatMap(wsUrl, (url) => WsClient.connect(url)))
      assert.strictEqual(refused, 401)
      const alpha = yield* tenant("alpha")
      const beta = yield* tenant("beta")
      const session = yield* http("POST", "/v1/sessions", { key: beta.key, body: { user_id: "u_b" } })
      assert.strictEqual(session.status, 201, session.text)
      const client = yield* connect(alpha.key)
      yield* client.send({ type: "subscribe", id: "s1", session_id: session.body.id })
      assert.strictEqual((yield* client.waitFor((f) => f.ref === "s1")).code, "session_not_found")
    }))

  it.scoped("a client reconnecting with its last final frame id receives the finals it missed", () =>
    Effect.gen(function*() {
      const alpha = yield* tenant("alpha")
      const first = yield* connect(alpha.key)
      yield* first.send({ type: "send", id: "m1", message: "first question", user_id: "u_r" })
      const ack1 = yield* first.waitFor((f) => f.type === "ack" && f.ref === "m1")
      const final1 = yield* first.waitFor((f) => f.type === "message" && f.run_id === ack1.run_id)
      yield* first.close
      // While it is away, a second message of the session is answered.
      const missed = yield* http("POST", "/v1/chat/messages", {
        key: alpha.key,
        body: { message: "second question", user_id: "u_r", session_id: ack1.session_id }
      })
      assert.strictEqual(missed.status, 200, missed.text)
      const db = yield* Database
      yield* db.tenant("alpha")(db.sql`SELECT 1 FROM realtime_finals WHERE tenant_id = 'alpha' AND run_id = ${String(missed.body.run_id)}`).pipe(
        Effect.repeat({ until: (rows) => rows.length > 0, schedule: Schedule.spaced("20 millis") })
      )
      const second = yield* connect(alpha.key)
      yield* second.send({ type: "subscribe", id: "r1", session_id: ack1.session_id, last_frame_id: final1.id })
      const resumed = yield* second.waitFor((f) => f.type === "message")
      assert.strictEqual(resumed.run_id, missed.body.run_id)
      assert.isTrue(Number(resumed.id.slice(2)) > Number(final1.id.slice(2)))
      assert.isUndefined(second.frames.find((f) => f.type === "message" && f.run_id === ack1.run_id))
    }))

  it.scoped("a slow consumer: intermediate frames are dropped and counted, memory stays bounded, the final arrives", () =>
    Effect.gen(function*() {
      const alpha = yield* tenant("alpha")
      const session = yield* http("POST", "/v1/sessions", { key: alpha.key, body: { user_id: "u_slow", session_id: "s_slow" } })
      assert.strictEqual(session.status, 201, session.text)
      // A run of the session that the test drives through the event bus itself.
      const db = yield* Database
      const runId = "run_slow_consumer"
      yield* db.tenant("alpha")(db.sql`INSERT INTO agent_runs (tenant_id, id, session_id, user_id, workflow, status, output)
        VALUES ('alpha', ${runId}, 's_slow', 'u_slow', 'echo', 'completed', ${JSON.stringify({ echo: "slow but sure", note: "echo" })})`)
      const client = yield* connect(alpha.key)
      yield* client.send({ type: "subscribe", id: "sub", session_id: "s_slow" })
      yield* client.waitFor((f) => f.ref === "sub")
      const dropsBefore = yield* metric("ws_backpressure_drops")
      yield* client.pause

      const bus = yield* EventBus
      const total = 2000
      const padding = "x".repeat(8 * 1024)
      for (let i = 0; i < total; i++) yield* bus.publish(envelope("alpha", runId, "tool.call.succeeded", i, { i, padding }))
      yield* bus.publish(envelope("alpha", runId, "agent.run.completed", total, { output: { echo: "slow but sure" } }))

      // The server drops while the client does not read.
      yield* metric("ws_backpressure_drops").pipe(
        Effect.repeat({ until: (n) => n > dropsBefore, schedule: Schedule.spaced("20 millis") })
      )
      yield* client.resume
      const final = yield* client.waitFor((f) => f.type === "message" && f.run_id === runId)
      assert.strictEqual((final.answer as Record<string, unknown>).answer, "slow but sure")
      const drops = (yield* metric("ws_backpressure_drops")) - dropsBefore
      const steps = client.frames.filter((f) => f.type === "step").length
      // Every intermediate frame was either delivered or counted as dropped; none piled up.
      assert.isTrue(drops > 0)
      assert.strictEqual(steps + drops, total)
      assert.isTrue(steps < total)
      // The final came after every step that was delivered.
      assert.strictEqual(client.frames.findIndex((f) => f.type === "message" && f.run_id === runId), client.frames.length - 1)
    }))
})

layer(
  EdgeNode.layer({ WS_SEND_QUEUE: "8", WS_HIGH_WATER_BYTES: "65536", WS_OVER_BOUND_GRACE: "300 millis" }),
  { timeout: 120_000, excludeTestServices: true }
)("Realtime bound", (it) => {
  it.scoped("a consumer that stays over its bound with final frames alone is closed with 4008", () =>
    Effect.gen(function*() {
      const alpha = yield* tenant("alpha")
      yield* http("POST", "/v1/sessions", { key: alpha.key, body: { user_id: "u_slow", session_id: "s_stuck" } })
      const db = yield* Database
      const finals = 20
      for (let i = 0; i < finals; i++) {
        yield* db.tenant("alpha")(db.sql`INSERT INTO agent_runs (tenant_id, id, session_id, user_id, workflow, status, output)
          VALUES ('alpha', ${`run_stuck_${i}`}, 's_stuck', 'u_slow', 'echo', 'completed', ${JSON.stringify({ echo: `answer ${i}` })})`)
      }
      const client = yield* connect(alpha.key)
      yield* client.send({ type: "subscribe", id: "sub", session_id: "s_stuck" })
      yield* client.waitFor((f) => f.ref === "sub")
      yield* client.pause
      const bus = yield* EventBus
      // Enough intermediate bytes to fill the socket, then more finals than the queue holds.
      const padding = "x".repeat(16 * 1024)
      for (let i = 0; i < 1000; i++) yield* bus.publish(envelope("alpha", "run_stuck_0", "tool.call.succeeded", i, { i, padding }))
      for (let i = 0; i < finals; i++) {
        yield* bus.publish(envelope("alpha", `run_stuck_${i}`, "agent.run.completed", 0, { output: { echo: `answer ${i}` } }))
      }
      const closedBefore = yield* metric("ws_closed_over_bound_total")
      yield* metric("ws_closed_over_bound_total").pipe(
        Effect.repeat({ until: (n) => n > closedBefore, schedule: Schedule.spaced("20 millis") })
      )
      yield* client.resume
      assert.strictEqual(yield* client.closed, 4008)
      // What it missed is not lost: the finals are persisted for a resume.
      const stored = yield* db.tenant("alpha")(db.sql<{ n: string }>`SELECT count(*) AS n FROM realtime_finals WHERE session_id = 's_stuck'`)
      assert.strictEqual(Number(stored[0]?.n), finals)
    }))
})
