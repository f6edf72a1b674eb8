import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as TestClock from "effect/TestClock"
import * as http from "node:http"
import * as OpenAiEmbedder from "../src/OpenAiEmbedder.js"

const RequestBody = Schema.Struct({
  model: Schema.String,
  input: Schema.Array(Schema.String),
  dimensions: Schema.optional(Schema.Number),
  encoding_format: Schema.optional(Schema.String)
})
const decodeRequest = Schema.decodeUnknownSync(Schema.parseJson(RequestBody))

interface Recorded {
  readonly body: typeof RequestBody.Type
  readonly authorization: string | undefined
}
interface Reply {
  readonly status: number
  readonly headers?: Record<string, string>
  readonly body: string
}

/** A real HTTP server on an ephemeral port that answers with `respond(request, attempt)`. */
const serve = (respond: (request: Recorded, attempt: number) => Reply) =>
  Effect.acquireRelease(
    Effect.async<{ readonly server: http.Server; readonly baseUrl: string; readonly requests: Array<Recorded> }>((resume) => {
      const requests: Array<Recorded> = []
      const server = http.createServer((req, res) => {
        let raw = ""
        req.setEncoding("utf8")
        req.on("data", (part: string) => (raw += part))
        req.on("end", () => {
          const recorded: Recorded = { body: decodeRequest(raw), authorization: req.headers.authorization }
          requests.push(recorded)
          const reply = req.method === "POST" && req.url === "/v1/embeddings"
            ? respond(recorded, requests.length)
            : { status: 404, body: "{}" }
          res.writeHead(reply.status, { "content-type": "application/json", ...reply.headers })
          res.end(reply.body)
        })
      })
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        const port = typeof address === "object" && address !== null ? address.port : 0
        resume(Effect.succeed({ server, baseUrl: `http://127.0.0.1:${port}/v1`, requests }))
      })
    }),
    ({ server }) =>
      Effect.async<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  )

/** `[text.length, 1, 0, …]`, returned in reverse order with `index` so that reordering is exercised. */
const embeddings = (input: ReadonlyArray<string>, dimension: number) =>
  JSON.stringify({
    object: "list",
    model: "test-model",
    data: input
      .map((text, index) => ({
        object: "embedding",
        index,
        embedding: Array.from({ length: dimension }, (_, k) => (k === 0 ? text.length : k === 1 ? 1 : 0))
      }))
      .reverse(),
    usage: { prompt_tokens: 1, total_tokens: 1 }
  })

const ok = (dimension: number) => (request: Recorded): Reply => ({ status: 200, body: embeddings(request.body.input, dimension) })

const secret = "sk-test-secret-123"

const embedder = (baseUrl: string, dimension = 8) =>
  OpenAiEmbedder.make({ baseUrl, model: "test-model", dimension, apiKey: Redacted.make(secret), timeout: "1 hour" }).pipe(
    Effect.provide(FetchHttpClient.layer)
  )

/** Yields to the event loop so that real I/O can progress (no timer involved). */
const tick = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

/** Backoff sleeps due within two minutes (per-request timeouts are an hour away in these tests). */
const dueSleeps = Effect.gen(function*() {
  const now = yield* Clock.currentTimeMillis
  const sleeps = yield* TestClock.sleeps()
  return Chunk.toReadonlyArray(sleeps).filter((at) => at > now && at - now <= 120_000).map((at) => at - now)
})

/** Runs a fiber to its end, moving the TestClock over each backoff sleep once the fiber waits on it. */
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

const norm = (v: Float32Array) => Math.sqrt(v.reduce((s, x) => s + x * x, 0))

describe("OpenAiEmbedder", () => {
  it.scoped("embeds in batches of 256, in input order, L2-normalised, with the bearer key", () =>
    Effect.gen(function*() {
      const { baseUrl, requests } = yield* serve(ok(8))
      const e = yield* embedder(`${baseUrl}/`)
      assert.strictEqual(e.model, "openai/test-model")
      assert.strictEqual(e.dimension, 8)
      const texts = Array.from({ length: 300 }, (_, i) => "x".repeat(i + 1))
      const vectors = yield* e.embed(texts)

      assert.strictEqual(requests.length, 2)
      assert.deepStrictEqual(requests.map((r) => r.body.input.length), [256, 44])
      assert.strictEqual(requests[0]!.body.model, "test-model")
      assert.strictEqual(requests[0]!.body.dimensions, undefined)
      assert.strictEqual(requests[0]!.authorization, `Bearer ${secret}`)
      assert.strictEqual(vectors.length, 300)
      vectors.forEach((v, i) => {
        assert.strictEqual(v.length, 8)
        assert.approximately(norm(v), 1, 1e-6)
        // [len, 1] normalised: the ratio of the first two components gives the input back
        assert.approximately(v[0]! / v[1]!, i + 1, 1e-3)
      })
      assert.deepStrictEqual(yield* e.embed([]), [])
      assert.strictEqual(requests.length, 2)
    }))

  it.scoped("honours Retry-After on a 429, then succeeds", () =>
    Effect.gen(function*() {
      const { baseUrl, requests } = yield* serve((request, attempt) =>
        attempt === 1
          ? { status: 429, headers: { "retry-after": "7" }, body: "{\"error\":{\"message\":\"rate limited\"}}" }
          : ok(8)(request)
      )
      const e = yield* embedder(baseUrl)
      const fiber = yield* Effect.fork(e.embed(["hello"]))

      const due = yield* waitForSleep
      assert.strictEqual(requests.length, 1)
      assert.deepStrictEqual(due, [7_000]) // the server's 7 s, not the 500 ms base delay
      yield* TestClock.adjust("6999 millis")
      yield* tick
      assert.strictEqual(requests.length, 1)
      yield* TestClock.adjust("1 millis")
      const vectors = yield* Fiber.join(fiber)
      assert.strictEqual(requests.length, 2)
      assert.strictEqual(vectors.length, 1)
    }))

  it.scoped("retries two 500s with exponential backoff, then succeeds", () =>
    Effect.gen(function*() {
      const { baseUrl, requests } = yield* serve((request, attempt) =>
        attempt <= 2 ? { status: 500, body: "upstream exploded" } : ok(8)(request)
      )
      const e = yield* embedder(baseUrl)
      const before = yield* Clock.currentTimeMillis
      const vectors = yield* drive(yield* Effect.fork(e.embed(["a", "b"])))
      const after = yield* Clock.currentTimeMillis
      assert.strictEqual(requests.length, 3)
      assert.strictEqual(vectors.length, 2)
      assert.strictEqual(after - before, 500 + 1_000)
    }))

  it.scoped("gives up after maxRetries with an EmbeddingError", () =>
    Effect.gen(function*() {
      const { baseUrl, requests } = yield* serve(() => ({ status: 503, body: "busy" }))
      const e = yield* OpenAiEmbedder.make({ baseUrl, model: "m", dimension: 8, maxRetries: 2, baseDelay: "10 millis" }).pipe(
        Effect.provide(FetchHttpClient.layer)
      )
      const error = yield* drive(yield* Effect.fork(Effect.flip(e.embed(["a"]))))
      assert.strictEqual(error._tag, "EmbeddingError")
      assert.strictEqual(requests.length, 3)
      assert.include(error.reason, "HTTP 503")
      assert.include(error.reason, "3 attempts")
    }))

  it.scoped("a malformed body is an EmbeddingError, not retried", () =>
    Effect.gen(function*() {
      const { baseUrl, requests } = yield* serve(() => ({ status: 200, body: "{\"data\": [{\"embedding\": \"nope\"}]" }))
      const e = yield* embedder(baseUrl)
      const error = yield* Effect.flip(e.embed(["a"]))
      assert.strictEqual(error._tag, "EmbeddingError")
      assert.strictEqual(error.provider, "openai/test-model")
      assert.include(error.reason, "malformed response")
      assert.strictEqual(requests.length, 1)

      const notJson = yield* serve(() => ({ status: 200, body: "<html>oops</html>" }))
      const e2 = yield* embedder(notJson.baseUrl)
      const error2 = yield* Effect.flip(e2.embed(["a"]))
      assert.include(error2.reason, "malformed response")
    }))

  it.scoped("a vector of the wrong dimension is an EmbeddingError naming expected and actual", () =>
    Effect.gen(function*() {
      const { baseUrl } = yield* serve(ok(5))
      const e = yield* embedder(baseUrl, 8)
      const error = yield* Effect.flip(e.embed(["a", "b"]))
      assert.strictEqual(error._tag, "EmbeddingError")
      assert.include(error.reason, "expected 8-dimensional vectors, got 5")
      assert.include(error.message, "expected 8-dimensional vectors, got 5")
    }))

  it.scoped("never quotes the API key in an error, even when the server echoes it", () =>
    Effect.gen(function*() {
      const { baseUrl } = yield* serve((request) => ({
        status: 401,
        body: JSON.stringify({ error: { message: `Incorrect API key provided: ${request.authorization ?? ""}` } })
      }))
      const e = yield* embedder(baseUrl)
      const error = yield* Effect.flip(e.embed(["a"]))
      assert.include(error.reason, "HTTP 401")
      assert.include(error.reason, "<redacted>")
      assert.notInclude(error.reason, secret)
      assert.notInclude(String(error), secret)
      assert.notInclude(JSON.stringify(error), secret)
    }))

  it.scoped("sends dimensions when asked to, and no Authorization without a key", () =>
    Effect.gen(function*() {
      const { baseUrl, requests } = yield* serve(ok(4))
      const e = yield* OpenAiEmbedder.make({ baseUrl, model: "m", dimension: 4, sendDimensions: true }).pipe(
        Effect.provide(FetchHttpClient.layer)
      )
      yield* e.embed(["a"])
      assert.strictEqual(requests[0]!.body.dimensions, 4)
      assert.strictEqual(requests[0]!.authorization, undefined)
    }))

  it("parses Retry-After as seconds or an HTTP date", () => {
    assert.strictEqual(OpenAiEmbedder.parseRetryAfter("3", 0), 3_000)
    assert.strictEqual(OpenAiEmbedder.parseRetryAfter("1.5", 0), 1_500)
    assert.strictEqual(OpenAiEmbedder.parseRetryAfter(undefined, 0), undefined)
    assert.strictEqual(OpenAiEmbedder.parseRetryAfter("soon", 0), undefined)
    const now = Date.parse("2025-01-01T00:00:00Z")
    assert.strictEqual(OpenAiEmbedder.parseRetryAfter("Wed, 01 Jan 2025 00:00:10 GMT", now), 10_000)
  })
})
