/**
 * Streamed tokens over the WebSocket gateway, against a started node: a chat message's answer
 * arrives as token frames, in order, that add up to the final answer's text, then the final
 * message; a slow consumer gets tokens coalesced or dropped (counted) and still the final, never a
 * token after it; a client of one tenant never receives another tenant's tokens. The send queue
 * coalesces a token only into the previous token of its step.
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { EventEnvelope } from "@tessera/domain/Event"
import { RunId } from "@tessera/domain/Ids"
import * as Realtime from "@tessera/domain/Realtime"
import { Database } from "@tessera/runtime/Database"
import { EventBus } from "@tessera/runtime/EventBus"
import { TokenDelta, TokenStream } from "@tessera/runtime/TokenStream"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import { makeSendQueue } from "../src/Realtime.js"
import * as EdgeNode from "./EdgeNode.js"
import * as WsClient from "./WsClient.js"

const { http, tenant } = EdgeNode

const connect = (key: string) =>
  Effect.flatMap(EdgeNode.Edge, ({ baseUrl }) => WsClient.connect(`${baseUrl.replace("http", "ws")}/v1/realtime`, { authorization: `Bearer ${key}` }))

const metric = (name: string) =>
  Effect.map(http("GET", "/metrics"), (reply) => {
    const line = reply.text.split("\n").find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`))
    return line === undefined ? 0 : Number(line.split(" ").pop())
  })

const completed = (tenantId: string, runId: string) =>
  new EventEnvelope({
    event_type: "agent.run.completed",
    event_id: `${tenantId}:${runId}:completed`,
    timestamp: DateTime.unsafeNow(),
    tenant_id: tenantId,
    user_id: "u_tok",
    run_id: runId,
    workflow: "echo",
    tier: null,
    metadata: {},
    payload: {}
  })

/** A finished run of a session, as the final frame reads it. */
const finishedRun = (tenantId: string, sessionId: string, runId: string, answer: string) =>
  Effect.flatMap(Database, (db) =>
    db.tenant(tenantId)(db.sql`INSERT INTO agent_runs (tenant_id, id, session_id, user_id, workflow, status, output)
      VALUES (${tenantId}, ${runId}, ${sessionId}, 'u_tok', 'echo', 'completed', ${JSON.stringify({ echo: answer })})`))

const tokensOf = (frames: ReadonlyArray<WsClient.Frame>, runId: unknown) => frames.filter((f) => f.type === "token" && f.run_id === runId)

layer(EdgeNode.layer({ WS_SEND_QUEUE: "16", WS_HIGH_WATER_BYTES: "65536" }), { timeout: 120_000, excludeTestServices: true })("Realtime tokens", (it) => {
  it.scoped("a chat answer streams as token frames that add up to the final answer, then the final message", () =>
    Effect.gen(function*() {
      const alpha = yield* tenant("alpha")
      const doc = yield* http("POST", "/v1/knowledge/documents", {
        key: alpha.key,
        body: {
          sourceKey: "shipping",
          title: "Shipping",
          format: "text",
          content: "Standard shipping takes 3 to 5 business days within the EU. Express shipping delivers the next business day."
        }
      })
      assert.strictEqual(doc.status, 201, doc.text)
      const session = yield* http("POST", "/v1/sessions", { key: alpha.key, body: { user_id: "u_tok" } })
      assert.strictEqual(session.status, 201, session.text)
      const client = yield* connect(alpha.key)
      yield* client.send({ type: "subscribe", id: "sub", session_id: session.body.id })
      yield* client.waitFor((f) => f.ref === "sub")
      yield* client.send({ type: "send", id: "c1", message: "How long does standard shipping take?", user_id: "u_tok", session_id: session.body.id })
      const ack = yield* client.waitFor((f) => f.type === "ack" && f.ref === "c1")
      const final = yield* client.waitFor((f) => f.type === "message" && f.run_id === ack.run_id)
      const answer = String((final.answer as Record<string, unknown>).answer)
      assert.include(answer, "3 to 5 business days")
      const tokens = tokensOf(client.frames, ack.run_id)
      assert.isAbove(tokens.length, 3)
      assert.deepStrictEqual(tokens.map((f) => f.seq), tokens.map((_, i) => i))
      assert.strictEqual(tokens.map((f) => f.delta).join(""), answer)
      assert.isTrue(client.frames.indexOf(tokens[tokens.length - 1]!) < client.frames.indexOf(final))
    }))

  it.scoped("a slow consumer gets tokens coalesced or dropped and counted, the final message, and no token after it", () =>
    Effect.gen(function*() {
      const alpha = yield* tenant("alpha")
      yield* http("POST", "/v1/sessions", { key: alpha.key, body: { user_id: "u_tok", session_id: "s_tok_slow" } })
      const runId = "run_tok_slow"
      yield* finishedRun("alpha", "s_tok_slow", runId, "all the words")
      const client = yield* connect(alpha.key)
      yield* client.send({ type: "subscribe", id: "sub", session_id: "s_tok_slow" })
      yield* client.waitFor((f) => f.ref === "sub")
      const dropsBefore = yield* metric("ws_backpressure_drops")
      yield* client.pause

      const tokens = yield* TokenStream
      const total = 3000
      const word = (seq: number) => `w${seq}${"x".repeat(8 * 1024)} `
      const delta = (seq: number) => new TokenDelta({ tenantId: "alpha", sessionId: "s_tok_slow", runId, stepId: "answer", seq, text: word(seq) })
      for (let seq = 0; seq < total; seq++) yield* tokens.publish(delta(seq))
      yield* metric("ws_backpressure_drops").pipe(Effect.repeat({ until: (n) => n > dropsBefore, schedule: Schedule.spaced("20 millis") }))
      const bus = yield* EventBus
      yield* bus.publish(completed("alpha", runId))
      const db = yield* Database
      yield* db.tenant("alpha")(db.sql`SELECT 1 FROM realtime_finals WHERE tenant_id = 'alpha' AND run_id = ${runId}`).pipe(
        Effect.repeat({ until: (rows) => rows.length > 0, schedule: Schedule.spaced("20 millis") })
      )
      // Tokens of the run that come after its final are not sent.
      yield* tokens.publish(delta(total))
      yield* client.resume
      const final = yield* client.waitFor((f) => f.type === "message" && f.run_id === runId)
      assert.strictEqual((final.answer as Record<string, unknown>).answer, "all the words")
      yield* client.send({ type: "ping", id: "after" })
      yield* client.waitFor((f) => f.type === "pong" && f.ref === "after")

      const frames = tokensOf(client.frames, runId)
      assert.isBelow(frames.length, total)
      assert.isTrue((yield* metric("ws_backpressure_drops")) > dropsBefore)
      // Each frame is whole consecutive deltas from its seq on: coalesced, never cut or reordered.
      let next = 0
      for (const frame of frames) {
        const seq = Number(frame.seq)
        assert.isAtLeast(seq, next)
        let expected = ""
        let n = seq
        while (expected.length < String(frame.delta).length) expected += word(n++)
        assert.strictEqual(frame.delta, expected)
        next = n
      }
      assert.isAtMost(next, total)
      assert.isTrue(client.frames.indexOf(final) > client.frames.indexOf(frames[frames.length - 1]!))
    }))

  it.scoped("a client of one tenant never receives the tokens of another tenant's session of the same id", () =>
    Effect.gen(function*() {
      const alpha = yield* tenant("alpha")
      const beta = yield* tenant("beta")
      for (const key of [alpha.key, beta.key]) {
        const created = yield* http("POST", "/v1/sessions", { key, body: { user_id: "u_tok", session_id: "s_tok_shared" } })
        assert.strictEqual(created.status, 201, created.text)
      }
      const alphaClient = yield* connect(alpha.key)
      const betaClient = yield* connect(beta.key)
      for (const client of [alphaClient, betaClient]) {
        yield* client.send({ type: "subscribe", id: "sub", session_id: "s_tok_shared" })
        yield* client.waitFor((f) => f.ref === "sub")
      }
      const tokens = yield* TokenStream
      const delta = (tenantId: string, seq: number) =>
        new TokenDelta({ tenantId, sessionId: "s_tok_shared", runId: "run_tok_shared", stepId: "answer", seq, text: `${tenantId}-${seq} ` })
      for (let seq = 0; seq < 5; seq++) {
        yield* tokens.publish(delta("beta", seq))
        yield* tokens.publish(delta("alpha", seq))
      }
      yield* alphaClient.waitFor((f) => f.type === "token" && f.seq === 4)
      yield* betaClient.waitFor((f) => f.type === "token" && f.seq === 4)
      const alphaText = tokensOf(alphaClient.frames, "run_tok_shared").map((f) => f.delta).join("")
      const betaText = tokensOf(betaClient.frames, "run_tok_shared").map((f) => f.delta).join("")
      assert.strictEqual(alphaText, "alpha-0 alpha-1 alpha-2 alpha-3 alpha-4 ")
      assert.strictEqual(betaText, "beta-0 beta-1 beta-2 beta-3 beta-4 ")
    }))
})

describe("send queue, tokens", () => {
  const token = (step: string, seq: number, delta: string) =>
    new Realtime.TokenFrame({ id: `t_${step}_${seq}`, run_id: RunId.make("run_q"), step_id: step, seq, delta })

  it("past its bound a token joins the previous token of its step, not another step's, and not when it starts the answer anew", () => {
    const queue = makeSendQueue(2)
    assert.strictEqual(queue.push(token("a", 0, "one ")) + queue.push(token("a", 1, "two ")), 0)
    assert.strictEqual(queue.push(token("a", 2, "three ")), 1)
    assert.strictEqual(queue.push(token("a", 0, "uno ")), 1)
    assert.strictEqual(queue.push(token("b", 1, "x ")), 1)
    const out = [queue.shift(), queue.shift(), queue.shift()]
    assert.deepStrictEqual(out.map((f) => f?.type === "token" ? [f.step_id, f.seq, f.delta] : undefined), [
      ["a", 0, "uno "],
      ["b", 1, "x "],
      undefined
    ])
  })
})
