/**
 * Embeddings from any OpenAI-compatible endpoint (`POST ${baseUrl}/embeddings`): OpenAI itself,
 * vLLM, llama.cpp, Ollama's `/v1`, text-embeddings-inference …
 *
 * Inputs go in batches of at most `batchSize` (256); 429, 5xx, transport failures and timeouts
 * are retried with exponential backoff (at least the server's `Retry-After`) on the Effect clock;
 * the response is validated with Schema, every vector must have the configured `dimension`, and
 * vectors are L2-normalised. The API key is `Redacted` and never appears in an error: a response
 * body quoted in an error has any occurrence of the key replaced.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { EmbeddingError } from "@tessera/domain/Knowledge"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import { Embedder } from "./Embedder.js"

export interface Options {
  /** e.g. `https://api.openai.com/v1` or `http://localhost:8080/v1`. */
  readonly baseUrl: string
  readonly model: string
  /** The dimension every returned vector must have. */
  readonly dimension: number
  /** Sent as `Authorization: Bearer …`; leave out for local servers without auth. */
  readonly apiKey?: Redacted.Redacted<string>
  /** Send `dimensions` in the request (models that can shorten vectors, e.g. text-embedding-3-*). Default false. */
  readonly sendDimensions?: boolean
  /** Inputs per request, at most 256 (the default). */
  readonly batchSize?: number
  /** Retries after the first attempt. Default 5. */
  readonly maxRetries?: number
  /** First backoff delay, doubled each retry. Default 500 millis. */
  readonly baseDelay?: Duration.DurationInput
  /** Cap on a single backoff delay (also on a server's `Retry-After`). Default 60 seconds. */
  readonly maxDelay?: Duration.DurationInput
  /** Per-request timeout. Default 60 seconds. */
  readonly timeout?: Duration.DurationInput
}

export const maxBatchSize = 256

const EmbeddingsResponse = Schema.Struct({
  data: Schema.Array(Schema.Struct({
    index: Schema.optional(Schema.Int.pipe(Schema.nonNegative())),
    embedding: Schema.Array(Schema.Number)
  }))
})
const decodeResponse = Schema.decodeUnknownEither(Schema.parseJson(EmbeddingsResponse))

/** A failure worth another attempt. */
class Retryable extends Data.TaggedError("Retryable")<{
  readonly reason: string
  readonly retryAfterMillis: number | undefined
}> {}

type AttemptError = Retryable | EmbeddingError

/** `Retry-After`: delay-seconds or an HTTP-date; undefined when absent or unreadable. */
export const parseRetryAfter = (value: string | undefined, nowMillis: number): number | undefined => {
  if (value === undefined) return undefined
  const trimmed = value.trim()
  if (/^\d+(?:\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000)
  const date = Date.parse(trimmed)
  return Number.isNaN(date) ? undefined : Math.max(0, date - nowMillis)
}

const normalize = (values: ReadonlyArray<number>): Float32Array => {
  let norm = 0
  for (const v of values) norm += v * v
  norm = Math.sqrt(norm)
  const out = new Float32Array(values.length)
  if (norm > 0 && Number.isFinite(norm)) values.forEach((v, i) => (out[i] = v / norm))
  return out
}

const snippet = (s: string, max = 300): string => (s.length > max ? `${s.slice(0, max)}…` : s)

export const make = (options: Options): Effect.Effect<Embedder["Type"], never, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    if (!Number.isInteger(options.dimension) || options.dimension < 1) {
      return yield* Effect.dieMessage(`OpenAiEmbedder: dimension must be a positive integer, got ${options.dimension}`)
    }
    const client = yield* HttpClient.HttpClient
    const model = `openai/${options.model}`
    const provider = model
    const url = `${options.baseUrl.replace(/\/+$/, "")}/embeddings`
    const batchSize = Math.max(1, Math.min(maxBatchSize, Math.floor(options.batchSize ?? maxBatchSize)))
    const maxRetries = Math.max(0, Math.floor(options.maxRetries ?? 5))
    const baseDelay = Duration.decode(options.baseDelay ?? Duration.millis(500))
    const maxDelay = Duration.decode(options.maxDelay ?? Duration.seconds(60))
    const timeout = Duration.decode(options.timeout ?? Duration.seconds(60))
    const key = options.apiKey === undefined ? "" : Redacted.value(options.apiKey)
    /** Anything quoted from outside goes through here, so the key never reaches an error. */
    const scrub = (s: string): string => (key.length > 0 ? s.split(key).join("<redacted>") : s)
    const fail = (reason: string) => new EmbeddingError({ provider, reason: scrub(reason) })

    const baseRequest = HttpClientRequest.post(url).pipe(
      HttpClientRequest.acceptJson,
      options.apiKey === undefined || key.length === 0
        ? (r) => r
        : HttpClientRequest.bearerToken(options.apiKey)
    )

    const attempt = (batch: ReadonlyArray<string>): Effect.Effect<ReadonlyArray<Float32Array>, AttemptError> =>
      Effect.gen(function*() {
        const request = HttpClientRequest.bodyUnsafeJson(baseRequest, {
          model: options.model,
          input: batch,
          encoding_format: "float",
          ...(options.sendDimensions === true ? { dimensions: options.dimension } : {})
        })
        const response = yield* client.execute(request).pipe(
          Effect.mapError((e) => new Retryable({ reason: scrub(e.message), retryAfterMillis: undefined }))
        )
        const body = yield* response.text.pipe(
          Effect.mapError((e) => new Retryable({ reason: scrub(`reading the response: ${e.message}`), retryAfterMillis: undefined }))
        )
        const status = response.status
        if (status === 429 || status >= 500) {
          const now = yield* Clock.currentTimeMillis
          return yield* new Retryable({
            reason: scrub(`HTTP ${status}: ${snippet(body, 200)}`),
            retryAfterMillis: parseRetryAfter(response.headers["retry-after"], now)
          })
        }
        if (status < 200 || status >= 300) return yield* fail(`HTTP ${status}: ${snippet(body)}`)
        const decoded = decodeResponse(body)
        if (Either.isLeft(decoded)) {
          return yield* fail(`malformed response: ${snippet(ParseResult.TreeFormatter.formatErrorSync(decoded.left))}`)
        }
        const data = decoded.right.data
        if (data.length !== batch.length) {
          return yield* fail(`expected ${batch.length} embeddings, got ${data.length}`)
        }
        const ordered: Array<ReadonlyArray<number> | undefined> = new Array(batch.length)
        for (let i = 0; i < data.length; i++) {
          const item = data[i]!
          const index = item.index ?? i
          if (index >= batch.length || ordered[index] !== undefined) {
            return yield* fail(`response has a missing or repeated embedding index ${index}`)
          }
          if (item.embedding.length !== options.dimension) {
            return yield* fail(
              `expected ${options.dimension}-dimensional vectors, got ${item.embedding.length} (input ${index})`
            )
          }
          ordered[index] = item.embedding
        }
        return ordered.map((v) => normalize(v!))
      }).pipe(
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () => new Retryable({ reason: `no response within ${Duration.format(timeout)}`, retryAfterMillis: undefined })
        })
      )

    const policy = Schedule.exponential(baseDelay, 2).pipe(
      Schedule.intersect(Schedule.recurs(maxRetries)),
      Schedule.intersect(Schedule.identity<AttemptError>()),
      Schedule.whileInput((e: AttemptError) => e._tag === "Retryable"),
      Schedule.modifyDelay(([, e], delay) => {
        const retryAfter = e._tag === "Retryable" && e.retryAfterMillis !== undefined
          ? Duration.millis(e.retryAfterMillis)
          : Duration.zero
        return Duration.min(Duration.max(delay, retryAfter), maxDelay)
      })
    )

    const embedBatch = (batch: ReadonlyArray<string>): Effect.Effect<ReadonlyArray<Float32Array>, EmbeddingError> =>
      attempt(batch).pipe(
        Effect.retry(policy),
        Effect.catchTag("Retryable", (e) => Effect.fail(fail(`${e.reason} (gave up after ${maxRetries + 1} attempts)`)))
      )

    const embed = (texts: ReadonlyArray<string>): Effect.Effect<ReadonlyArray<Float32Array>, EmbeddingError> => {
      const batches: Array<ReadonlyArray<string>> = []
      for (let i = 0; i < texts.length; i += batchSize) batches.push(texts.slice(i, i + batchSize))
      return Effect.forEach(batches, embedBatch).pipe(
        Effect.map((results) => results.flat()),
        Effect.withSpan("OpenAiEmbedder.embed", { attributes: { model, inputs: texts.length } })
      )
    }

    return { model, dimension: options.dimension, embed }
  })

export const layer = (options: Options): Layer.Layer<Embedder> =>
  Layer.effect(Embedder, make(options)).pipe(Layer.provide(FetchHttpClient.layer))

/**
 * Reads `EMBEDDINGS_BASE_URL`, `EMBEDDINGS_MODEL`, `EMBEDDINGS_DIMENSION` and the optional
 * `EMBEDDINGS_API_KEY` (redacted; empty counts as absent) and `EMBEDDINGS_SEND_DIMENSIONS`
 * (boolean, default false).
 */
export const layerConfig: Layer.Layer<Embedder, ConfigError.ConfigError> = Layer.unwrapEffect(
  Effect.gen(function*() {
    const baseUrl = yield* Config.string("EMBEDDINGS_BASE_URL")
    const model = yield* Config.nonEmptyString("EMBEDDINGS_MODEL")
    const dimension = yield* Config.integer("EMBEDDINGS_DIMENSION").pipe(
      Config.validate({ message: "must be a positive integer", validation: (n) => n > 0 })
    )
    const apiKey = yield* Config.option(Config.redacted("EMBEDDINGS_API_KEY"))
    const sendDimensions = yield* Config.boolean("EMBEDDINGS_SEND_DIMENSIONS").pipe(Config.withDefault(false))
    const key = Option.filter(apiKey, (k) => Redacted.value(k).length > 0)
    return layer({
      baseUrl,
      model,
      dimension,
      sendDimensions,
      ...(Option.isSome(key) ? { apiKey: key.value } : {})
    })
  })
)
