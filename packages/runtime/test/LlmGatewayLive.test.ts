import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import { assert, describe, it } from "@effect/vitest"
import { ClassifyRequest, GenerateRequest, Label, LlmMessage, Passage } from "@tessera/domain/Llm"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as AnthropicProvider from "../src/AnthropicProvider.js"
import * as LlmCache from "../src/LlmCache.js"
import * as LlmGatewayLive from "../src/LlmGatewayLive.js"
import * as LlmRoutes from "../src/LlmRoutes.js"
import * as OpenAiProvider from "../src/OpenAiProvider.js"
import { chatCompletion, chatStream, message, messageStream, type Reply, serve } from "./LlmServers.js"

const secret = "sk-test-secret-4242"

const route = (spec: string) => {
  const parsed = LlmRoutes.parse(spec)
  if (parsed._tag === "Left") throw new Error(parsed.left)
  return parsed.right
}

/** A gateway whose tiers go to the given routes, on providers at the given servers. */
const gateway = (
  urls: { readonly openai?: string; readonly anthropic?: string },
  llm: string,
  extra: Partial<LlmGatewayLive.Options> = {}
) =>
  Effect.gen(function*() {
    const providers = new Map()
    if (urls.openai !== undefined) {
      const p = yield* OpenAiProvider.make({ baseUrl: `${urls.openai}/v1`, apiKey: Redacted.make(secret) })
      providers.set(p.name, p)
    }
    if (urls.anthropic !== undefined) {
      const p = yield* AnthropicProvider.make({ baseUrl: urls.anthropic, apiKey: Redacted.make(secret) })
      providers.set(p.name, p)
    }
    return yield* LlmGatewayLive.make({
      ...LlmGatewayLive.defaults,
      routes: { SLM_A: [LlmRoutes.local], SLM_B: route(llm), LLM: route(llm) },
      providers,
      cacheTtl: 0,
      timeout: Duration.hours(1),
      ...extra
    })
  }).pipe(Effect.provide(FetchHttpClient.layer))

const ask = (text: string, extra: Partial<ConstructorParameters<typeof GenerateRequest>[0]> = {}) =>
  new GenerateRequest({ tenantId: "acme", tier: "LLM", messages: [new LlmMessage({ role: "user", content: text })], ...extra })

const tick = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

/** Backoff sleeps due within two minutes. */
const dueSleeps = Effect.gen(function*() {
  const now = yield* Clock.currentTimeMillis
  return Chunk.toReadonlyArray(yield* TestClock.sleeps()).filter((at) => at > now && at - now <= 120_000).map((at) => at - now)
})

/** Runs the fiber to its end, moving the TestClock over each sleep once the fiber waits on it. */
const drive = <A, E>(fiber: Fiber.RuntimeFiber<A, E>) =>
  Effect.gen(function*() {
    while (Option.isNone(yield* Fiber.poll(fiber))) {
      const due = yield* dueSleeps
      if (due.length > 0) yield* TestClock.adjust(Math.min(...due))
      else yield* tick
    }
    return yield* Fiber.join(fiber)
  })

const waitForSleep = Effect.gen(function*() {
  let due = yield* dueSleeps
  while (due.length === 0) {
    yield* tick
    due = yield* dueSleeps
  }
  return due
})

const openaiOnly = (respond: (attempt: number) => Reply) => serve((_, attempt) => respond(attempt))

describe("LlmGatewayLive", () => {
  it.scoped("OpenAI JSON: reported usage, price-table cost, citations, bearer key", () =>
    Effect.gen(function*() {
      const { url, requests } = yield* openaiOnly(() => chatCompletion("Express shipping arrives the next business day [faq-1].", { prompt_tokens: 1000, completion_tokens: 500 }))
      const llm = yield* gateway({ openai: url }, "openai:gpt-4o-mini")
      const passages = [new Passage({ id: "faq-1", source: "faq.md", text: "Express shipping arrives the next business day." })]
      const response = yield* llm.generate(ask("How fast is express shipping?", { passages }))
      assert.strictEqual(response.provider, "openai")
      assert.strictEqual(response.model, "gpt-4o-mini")
      assert.strictEqual(response.tier, "LLM")
      assert.deepStrictEqual([response.usage.inputTokens, response.usage.outputTokens, response.usage.reported], [1000, 500, true])
      assert.approximately(response.costUsd, 0.00015 + 0.5 * 0.0006, 1e-12)
      assert.deepStrictEqual(response.citations, ["faq-1"])
      assert.isTrue(response.answered)
      assert.strictEqual(requests[0]!.path, "/v1/chat/completions")
      assert.strictEqual(requests[0]!.headers.authorization, `Bearer ${secret}`)
      assert.strictEqual(requests[0]!.body["model"], "gpt-4o-mini")
      const messages = requests[0]!.body["messages"] as ReadonlyArray<{ role: string; content: string }>
      assert.strictEqual(messages[0]!.role, "system")
      assert.include(messages[0]!.content, "[faq-1] Express shipping")
    }))

  it.scoped("OpenAI SSE: deltas in order, then Done with the streamed usage and its cost", () =>
    Effect.gen(function*() {
      const { url, requests } = yield* openaiOnly(() => chatStream(["Hel", "lo ", "there", "!"], { prompt_tokens: 2000, completion_tokens: 1000 }))
      const llm = yield* gateway({ openai: url }, "openai:gpt-4o-mini")
      const parts = Chunk.toReadonlyArray(yield* Stream.runCollect(llm.stream(ask("hi"))))
      assert.deepStrictEqual(parts.flatMap((p) => p._tag === "Delta" ? [p.text] : []), ["Hel", "lo ", "there", "!"])
      const done = parts[parts.length - 1]!
      assert.strictEqual(done._tag, "Done")
      if (done._tag !== "Done") return
      assert.strictEqual(done.response.text, "Hello there!")
      assert.deepStrictEqual([done.response.usage.inputTokens, done.response.usage.outputTokens, done.response.usage.reported], [2000, 1000, true])
      assert.approximately(done.response.costUsd, 2 * 0.00015 + 0.0006, 1e-12)
      assert.strictEqual(requests[0]!.body["stream"], true)
    }))

  it.scoped("a 429 waits for its Retry-After on the Effect clock, then succeeds", () =>
    Effect.gen(function*() {
      const { url, requests } = yield* openaiOnly((attempt) =>
        attempt === 1 ? { status: 429, headers: { "retry-after": "7" }, body: "{\"error\":{\"message\":\"slow down\"}}" } : chatCompletion("ok")
      )
      const llm = yield* gateway({ openai: url }, "openai:gpt-4o-mini")
      const fiber = yield* Effect.fork(llm.generate(ask("hi")))
      assert.deepStrictEqual(yield* waitForSleep, [7_000])
      yield* TestClock.adjust("6999 millis")
      yield* tick
      assert.strictEqual(requests.length, 1)
      yield* TestClock.adjust("1 millis")
      const response = yield* Fiber.join(fiber)
      assert.strictEqual(response.text, "ok")
      assert.strictEqual(requests.length, 2)
    }))

  it.scoped("5xx is retried with exponential backoff, then the gateway fails over to the next provider", () =>
    Effect.gen(function*() {
      const openai = yield* openaiOnly(() => ({ status: 500, body: "{\"error\":{\"message\":\"boom\"}}" }))
      const anthropic = yield* serve(() => message("From Claude.", 300, 100))
      const llm = yield* gateway({ openai: openai.url, anthropic: anthropic.url }, "openai:gpt-4o-mini, anthropic:claude-3-5-haiku-latest")
      const before = yield* Clock.currentTimeMillis
      const response = yield* drive(yield* Effect.fork(llm.generate(ask("hi", { messages: [new LlmMessage({ role: "system", content: "Be brief." }), new LlmMessage({ role: "user", content: "hi" })] }))))
      assert.strictEqual(openai.requests.length, 4) // the first attempt and 3 retries
      assert.strictEqual((yield* Clock.currentTimeMillis) - before, 500 + 1_000 + 2_000)
      assert.strictEqual(response.provider, "anthropic")
      assert.strictEqual(response.text, "From Claude.")
      assert.approximately(response.costUsd, 0.3 * 0.0008 + 0.1 * 0.004, 1e-12)
      const sent = anthropic.requests[0]!
      assert.match(sent.path, /^\/v1\/messages/)
      assert.strictEqual(sent.headers["x-api-key"], secret)
      assert.strictEqual(sent.body["system"], "Be brief.")
      assert.deepStrictEqual(sent.body["messages"], [{ role: "user", content: "hi" }])
    }))

  it.scoped("the breaker opens after repeated failures, refuses without calling, and lets a trial through after its reset", () =>
    Effect.gen(function*() {
      let healthy = false
      const { url, requests } = yield* openaiOnly(() => healthy ? chatCompletion("back") : { status: 503, body: "{}" })
      const llm = yield* gateway({ openai: url }, "openai:gpt-4o-mini", {
        retries: 0,
        breaker: { failureThreshold: 2, resetAfter: Duration.seconds(30) }
      })
      for (let i = 0; i < 2; i++) {
        const error = yield* Effect.flip(llm.generate(ask("hi")))
        assert.strictEqual(error._tag === "LlmError" ? error.reason : error._tag, "unavailable")
      }
      const open = yield* Effect.flip(llm.generate(ask("hi")))
      assert.strictEqual(open._tag === "LlmError" ? open.reason : open._tag, "circuit_open")
      assert.strictEqual(requests.length, 2)
      healthy = true
      yield* TestClock.adjust("29 seconds")
      assert.strictEqual((yield* Effect.flip(llm.generate(ask("hi"))))._tag, "LlmError")
      assert.strictEqual(requests.length, 2)
      yield* TestClock.adjust("1 second")
      assert.strictEqual((yield* llm.generate(ask("hi"))).text, "back")
      assert.strictEqual(requests.length, 3)
    }))

  it.scoped("a malformed body is a bad_response, not retried; a key echoed by the server never reaches the error", () =>
    Effect.gen(function*() {
      const malformed = yield* openaiOnly(() => ({ status: 200, body: "{\"choices\": \"nope\"}" }))
      const llm = yield* gateway({ openai: malformed.url }, "openai:gpt-4o-mini")
      const error = yield* Effect.flip(llm.generate(ask("hi")))
      assert.strictEqual(error._tag, "LlmError")
      if (error._tag !== "LlmError") return
      assert.strictEqual(error.reason, "bad_response")
      assert.include(error.detail, "malformed response")
      assert.strictEqual(malformed.requests.length, 1)

      const echo = yield* serve((request) => ({ status: 401, body: JSON.stringify({ error: { message: `bad key ${request.headers.authorization ?? ""}` } }) }))
      const llm2 = yield* gateway({ openai: echo.url }, "openai:gpt-4o-mini")
      const refused = yield* Effect.flip(llm2.generate(ask("hi")))
      assert.strictEqual(refused._tag === "LlmError" ? refused.reason : refused._tag, "refused")
      assert.notInclude(JSON.stringify(refused), secret)
      assert.notInclude(String(refused), secret)
      assert.include(refused.message, "<redacted>")
    }))

  it.scoped("the token budget caps max_tokens, refuses a prompt that cannot fit, and fails an answer that overspends", () =>
    Effect.gen(function*() {
      const { url, requests } = yield* openaiOnly(() => chatCompletion("a long answer", { prompt_tokens: 40, completion_tokens: 90 }))
      const llm = yield* gateway({ openai: url }, "openai:gpt-4o-mini")
      const refused = yield* Effect.flip(llm.generate(ask("x".repeat(400), { tokenBudget: 50 })))
      assert.strictEqual(refused._tag, "TokenBudgetExceeded")
      assert.strictEqual(requests.length, 0)
      const over = yield* Effect.flip(llm.generate(ask("hello", { tokenBudget: 100, maxOutputTokens: 500 })))
      assert.strictEqual(over._tag, "TokenBudgetExceeded")
      if (over._tag === "TokenBudgetExceeded") assert.deepStrictEqual([over.budget, over.needed], [100, 130])
      assert.strictEqual(requests[0]!.body["max_tokens"], 98) // 100 minus the ≈2-token prompt
    }))

  it.scoped("a stream that outgrows its token budget ends with TokenBudgetExceeded after the deltas within it", () =>
    Effect.gen(function*() {
      const piece = "x".repeat(40) // ≈ 10 tokens each
      const { url } = yield* openaiOnly(() => chatStream(Array.from({ length: 10 }, () => piece)))
      const llm = yield* gateway({ openai: url }, "openai:gpt-4o-mini")
      const seen: Array<string> = []
      const error = yield* llm.stream(ask("hi", { tokenBudget: 35 })).pipe(
        Stream.runForEach((part) => Effect.sync(() => part._tag === "Delta" && seen.push(part.text))),
        Effect.flip
      )
      assert.strictEqual(error._tag, "TokenBudgetExceeded")
      assert.isAtLeast(seen.length, 2)
      assert.isBelow(seen.length, 4)
    }))

  it.scoped("structured output is repaired a bounded number of times, usage summed", () =>
    Effect.gen(function*() {
      const { url, requests } = yield* openaiOnly((attempt) =>
        attempt === 1 ? chatCompletion("Sure! {\"email\": 42}", { prompt_tokens: 10, completion_tokens: 5 }) : chatCompletion("{\"email\": \"a@b.example\"}", { prompt_tokens: 20, completion_tokens: 6 })
      )
      const llm = yield* gateway({ openai: url }, "openai:gpt-4o-mini")
      const schema = { type: "object", properties: { email: { type: "string" } }, required: ["email"] }
      const response = yield* llm.generate(ask("my email is a@b.example", { outputSchema: schema }))
      assert.deepStrictEqual(response.json, { email: "a@b.example" })
      assert.deepStrictEqual([response.usage.inputTokens, response.usage.outputTokens], [30, 11])
      assert.strictEqual(requests.length, 2)
      assert.deepStrictEqual(requests[0]!.body["response_format"], { type: "json_object" })
      const repair = (requests[1]!.body["messages"] as ReadonlyArray<{ role: string; content: string }>).at(-1)!
      assert.include(repair.content, "$.email")

      const never = yield* openaiOnly(() => chatCompletion("no json here"))
      const llm2 = yield* gateway({ openai: never.url }, "openai:gpt-4o-mini")
      const invalid = yield* Effect.flip(llm2.generate(ask("x", { outputSchema: schema })))
      assert.strictEqual(invalid._tag, "OutputInvalid")
      assert.strictEqual(never.requests.length, 3) // the answer and two repairs
    }))

  it.scoped("Anthropic messages: JSON and streamed, with usage", () =>
    Effect.gen(function*() {
      const { url } = yield* serve((request) => request.body["stream"] === true ? messageStream(["Bon", "jour"], 40, 12) : message("Bonjour", 80, 15))
      const llm = yield* gateway({ anthropic: url }, "anthropic:claude-3-5-haiku-latest")
      const response = yield* llm.generate(ask("hello in French"))
      assert.deepStrictEqual([response.text, response.usage.inputTokens, response.usage.outputTokens], ["Bonjour", 80, 15])
      const parts = Chunk.toReadonlyArray(yield* Stream.runCollect(llm.stream(ask("hello in French"))))
      assert.deepStrictEqual(parts.flatMap((p) => p._tag === "Delta" ? [p.text] : []), ["Bon", "jour"])
      const done = parts.at(-1)!
      assert.isTrue(done._tag === "Done" && done.response.usage.reported && done.response.usage.inputTokens === 40 && done.response.usage.outputTokens === 12)
    }))

  it.scoped("Anthropic's 429 and an OpenAI stream's 503 are retried after their Retry-After", () =>
    Effect.gen(function*() {
      const anthropic = yield* serve((_, attempt) =>
        attempt === 1 ? { status: 429, headers: { "retry-after": "3" }, body: "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"slow\"}}" } : message("ok")
      )
      const llm = yield* gateway({ anthropic: anthropic.url }, "anthropic:claude-3-5-haiku-latest")
      const fiber = yield* Effect.fork(llm.generate(ask("hi")))
      assert.deepStrictEqual(yield* waitForSleep, [3_000])
      yield* TestClock.adjust("3 seconds")
      assert.strictEqual((yield* Fiber.join(fiber)).text, "ok")
      assert.strictEqual(anthropic.requests.length, 2)

      const openai = yield* openaiOnly((attempt) => attempt === 1 ? { status: 503, headers: { "retry-after": "2" }, body: "{}" } : chatStream(["a", "b"]))
      const llm2 = yield* gateway({ openai: openai.url }, "openai:gpt-4o-mini")
      const streaming = yield* Effect.fork(Stream.runCollect(llm2.stream(ask("hi"))))
      assert.deepStrictEqual(yield* waitForSleep, [2_000])
      yield* TestClock.adjust("2 seconds")
      const parts = Chunk.toReadonlyArray(yield* Fiber.join(streaming))
      assert.deepStrictEqual(parts.flatMap((p) => p._tag === "Delta" ? [p.text] : []), ["a", "b"])
      assert.strictEqual(openai.requests.length, 2)
    }))

  it.scoped("a stream fails over while nothing was sent", () =>
    Effect.gen(function*() {
      const openai = yield* openaiOnly(() => ({ status: 400, body: "{\"error\":{\"message\":\"bad model\"}}" }))
      const anthropic = yield* serve(() => messageStream(["from ", "claude"]))
      const llm = yield* gateway({ openai: openai.url, anthropic: anthropic.url }, "openai:gpt-4o-mini, anthropic:claude-3-5-haiku-latest")
      const parts = Chunk.toReadonlyArray(yield* Stream.runCollect(llm.stream(ask("hi"))))
      assert.deepStrictEqual(parts.flatMap((p) => p._tag === "Delta" ? [p.text] : []), ["from ", "claude"])
      assert.strictEqual(openai.requests.length, 1)
    }))

  it.scoped("answers are cached per tenant for the TTL (in process and in Redis)", () =>
    Effect.gen(function*() {
      const { url, requests } = yield* openaiOnly(() => chatCompletion("cached answer"))
      const prefix = `tessera:test:llm:${Date.now()}:${Math.random()}:`
      for (const cache of [yield* LlmCache.memory(), yield* LlmCache.redis(Redacted.make(process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"), prefix)]) {
        const start = requests.length
        const llm = yield* gateway({ openai: url }, "openai:gpt-4o-mini", { cache, cacheTtl: Duration.minutes(5) })
        const first = yield* llm.generate(ask("same question"))
        const second = yield* llm.generate(ask("same question"))
        assert.isFalse(first.cached)
        assert.isTrue(second.cached)
        assert.strictEqual(second.text, "cached answer")
        assert.strictEqual(second.costUsd, 0)
        yield* llm.generate(ask("same question", { tenantId: "other" }))
        assert.strictEqual(requests.length - start, 2) // the other tenant does not share the entry
      }
    }))

  it.scoped("a repeated idempotency key is answered from the first call and not billed again", () =>
    Effect.gen(function*() {
      const { url, requests } = yield* openaiOnly(() => chatCompletion("once", { prompt_tokens: 100, completion_tokens: 10 }))
      const llm = yield* gateway({ openai: url }, "openai:gpt-4o-mini", { cache: yield* LlmCache.memory() })
      const first = yield* llm.generate(ask("hi", { idempotencyKey: "run-1:answer" }))
      const again = yield* llm.generate(ask("hi", { idempotencyKey: "run-1:answer" }))
      const other = yield* llm.generate(ask("hi", { idempotencyKey: "run-2:answer" }))
      assert.isAbove(first.costUsd, 0)
      assert.deepStrictEqual([again.text, again.cached, again.costUsd], ["once", true, 0])
      assert.isFalse(other.cached)
      assert.strictEqual(requests.length, 2)
    }))

  it.scoped("classifies through a remote model with its JSON answer", () =>
    Effect.gen(function*() {
      const { url } = yield* openaiOnly(() => chatCompletion("{\"label\": \"order\", \"confidence\": 0.83}", { prompt_tokens: 60, completion_tokens: 8 }))
      const llm = yield* gateway({ openai: url }, "openai:gpt-4o-mini")
      const labels = [new Label({ name: "faq" }), new Label({ name: "order" })] as const
      const response = yield* llm.classify(new ClassifyRequest({ tenantId: "acme", tier: "LLM", text: "where is my parcel", labels: [...labels] }))
      assert.deepStrictEqual([response.label, response.confidence, response.tier], ["order", 0.83, "LLM"])
      assert.isAbove(response.costUsd, 0)
      const local = yield* llm.classify(new ClassifyRequest({ tenantId: "acme", tier: "SLM_A", text: "where is my order", labels: [...labels] }))
      assert.strictEqual(local.costUsd, 0)
    }))
})
