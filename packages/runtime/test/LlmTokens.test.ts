/**
 * Streamed answers on the token channel: a generate request with a stream target publishes its
 * text as numbered deltas that add up to the response's text — word by word on the local model,
 * chunk by chunk from a remote provider's stream (through real HTTP), as one delta when the answer
 * is cached; without a target nothing is published. The channel itself on both adapters: NATS core
 * (the tenant in the subject, nothing stored in JetStream) and in process.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import { assert, describe, it } from "@effect/vitest"
import { GenerateRequest, LlmMessage, Passage } from "@tessera/domain/Llm"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import { connect } from "nats"
import { randomBytes } from "node:crypto"
import * as LlmCache from "../src/LlmCache.js"
import { LlmGateway } from "../src/LlmGateway.js"
import * as LlmGatewayLive from "../src/LlmGatewayLive.js"
import * as LlmRoutes from "../src/LlmRoutes.js"
import * as MemoryEventBus from "../src/MemoryEventBus.js"
import * as NatsEventBus from "../src/NatsEventBus.js"
import * as OpenAiProvider from "../src/OpenAiProvider.js"
import { TokenDelta, TokenStream } from "../src/TokenStream.js"
import { chatStream, serve } from "./LlmServers.js"

const target = { sessionId: "s_1", runId: "run_1", stepId: "answer" }

const ask = (text: string, extra: Partial<ConstructorParameters<typeof GenerateRequest>[0]> = {}) =>
  new GenerateRequest({ tenantId: "acme", tier: "SLM_A", messages: [new LlmMessage({ role: "user", content: text })], ...extra })

const passages = [new Passage({ id: "faq-1", text: "Standard shipping takes 3 to 5 business days. Express shipping arrives the next day.", source: "faq" })]

/** Runs `body` while collecting every delta on the channel; returns what `body` returned and the deltas. */
const collecting = <A, E, R>(body: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const tokens = yield* TokenStream
    const seen: Array<TokenDelta> = []
    const fiber = yield* tokens.subscribe.pipe(Stream.runForEach((delta) => Effect.sync(() => seen.push(delta))), Effect.fork)
    yield* Effect.repeat(Effect.yieldNow(), { times: 10 })
    const result = yield* body
    // In process: the subscriber has every delta once it has had a turn.
    yield* Effect.repeat(Effect.yieldNow(), { times: 10 })
    yield* Fiber.interrupt(fiber)
    return { result, seen }
  })

describe("LlmTokens", () => {
  it.effect("the local model publishes word-sized deltas numbered from 0 that add up to its answer; no target, no deltas", () =>
    Effect.gen(function*() {
      const { result, seen } = yield* collecting(
        Effect.flatMap(LlmGateway, (llm) => llm.generate(ask("how long does shipping take", { passages, stream: target })))
      )
      assert.isTrue(result.answered)
      assert.isAbove(seen.length, 3)
      assert.strictEqual(seen.map((d) => d.text).join(""), result.text)
      assert.deepStrictEqual(seen.map((d) => d.seq), seen.map((_, i) => i))
      assert.isTrue(seen.every((d) => d.tenantId === "acme" && d.sessionId === "s_1" && d.runId === "run_1" && d.stepId === "answer"))
      assert.isTrue(seen.slice(0, -1).every((d) => /\s$/.test(d.text)))

      const silent = yield* collecting(Effect.flatMap(LlmGateway, (llm) => llm.generate(ask("how long does shipping take", { passages }))))
      assert.deepStrictEqual(silent.seen, [])
    }).pipe(Effect.provide(LlmGatewayLive.layerLocal.pipe(Layer.provideMerge(MemoryEventBus.layer)))))

  it.scoped("a remote answer is published chunk by chunk from the provider's stream; a cached repeat as one delta", () =>
    Effect.gen(function*() {
      const { requests, url } = yield* serve(() => chatStream(["Ship", "ping takes ", "3 days."], { prompt_tokens: 40, completion_tokens: 6 }))
      const openai = yield* OpenAiProvider.make({ baseUrl: `${url}/v1`, apiKey: Redacted.make("sk-test") }).pipe(Effect.provide(FetchHttpClient.layer))
      const tokens = yield* TokenStream
      const parsed = LlmRoutes.parse("openai:gpt-4o-mini")
      if (parsed._tag === "Left") return assert.fail(parsed.left)
      const llm = yield* LlmGatewayLive.make({
        ...LlmGatewayLive.defaults,
        routes: { SLM_A: parsed.right, SLM_B: parsed.right, LLM: parsed.right },
        providers: new Map([[openai.name, openai]]),
        cache: yield* LlmCache.memory(),
        timeout: Duration.hours(1),
        tokens
      })
      const first = yield* collecting(llm.generate(ask("shipping?", { stream: target })))
      assert.strictEqual(first.result.text, "Shipping takes 3 days.")
      assert.deepStrictEqual([first.result.usage.inputTokens, first.result.usage.outputTokens, first.result.usage.reported], [40, 6, true])
      assert.deepStrictEqual(first.seen.map((d) => [d.seq, d.text]), [[0, "Ship"], [1, "ping takes "], [2, "3 days."]])
      assert.strictEqual(requests[0]!.body["stream"], true)

      const again = yield* collecting(llm.generate(ask("shipping?", { stream: target })))
      assert.isTrue(again.result.cached)
      assert.deepStrictEqual(again.seen.map((d) => [d.seq, d.text]), [[0, "Shipping takes 3 days."]])
      assert.strictEqual(requests.length, 1)
    }).pipe(Effect.provide(MemoryEventBus.layer)))
})

const natsUrl = process.env.NATS_URL ?? "nats://127.0.0.1:4222"

describe("TokenStream on NATS", () => {
  it.scopedLive("deltas cross NATS core in order, under the tenant's subject, and JetStream stores none of them", () =>
    Effect.gen(function*() {
      const prefix = `tok${randomBytes(4).toString("hex")}`
      const stream = prefix.toUpperCase()
      const context = yield* Layer.build(NatsEventBus.layer({ servers: natsUrl, prefix, stream, deleteStreamOnClose: true }))
      const tokens = Context.get(context, TokenStream)
      const seen: Array<TokenDelta> = []
      const subjects: Array<string> = []
      const nc = yield* Effect.acquireRelease(Effect.promise(() => connect({ servers: natsUrl })), (nc) => Effect.promise(() => nc.close()))
      nc.subscribe(`${prefix}_tokens.>`, { callback: (_, msg) => subjects.push(msg.subject) })
      yield* Effect.promise(() => nc.flush())
      const fiber = yield* tokens.subscribe.pipe(
        Stream.take(4),
        Stream.runForEach((delta) => Effect.sync(() => seen.push(delta))),
        Effect.fork
      )
      // The subscription is on the server once the stream has flushed it; publish until the first arrives.
      const delta = (tenantId: string, seq: number) =>
        new TokenDelta({ tenantId, sessionId: "s_9", runId: "run_9", stepId: "answer", seq, text: `w${seq} ` })
      yield* Effect.repeat(
        Effect.zipRight(tokens.publish(delta("acme", 0)), Effect.sleep("20 millis")),
        { until: () => seen.length > 0 }
      )
      yield* tokens.publish(delta("not.a token", 1))
      for (let seq = 1; seq <= 3; seq++) yield* tokens.publish(delta(seq === 2 ? "globex" : "acme", seq))
      yield* Fiber.join(fiber)
      assert.deepStrictEqual(seen.slice(-3).map((d) => [d.tenantId, d.seq, d.text]), [["acme", 1, "w1 "], ["globex", 2, "w2 "], ["acme", 3, "w3 "]])
      // Another connection sees the tenant in the subject.
      yield* Effect.sleep("10 millis").pipe(Effect.repeat({ until: () => subjects.includes(`${prefix}_tokens.globex.s_9`) }))
      assert.isFalse(subjects.some((s) => s.includes("not")))
      const jsm = yield* Effect.promise(() => nc.jetstreamManager())
      const info = yield* Effect.promise(() => jsm.streams.info(stream))
      assert.strictEqual(info.state.messages, 0)
    }), { timeout: 30_000 })
})
