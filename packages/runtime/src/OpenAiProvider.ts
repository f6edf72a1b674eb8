/**
 * The `openai` provider: the chat-completions endpoint of OpenAI or of any OpenAI-compatible
 * server (vLLM, Ollama, llama.cpp, LM Studio) at `baseUrl`. Streaming goes through
 * `@effect/ai-openai`'s `OpenAiClient` (its SSE reader, bearer key and base URL); the JSON call
 * uses the same base URL and key with a lenient response schema, because compatible servers leave
 * out fields (`refusal`, `logprobs`) that OpenAI's generated schema requires.
 *
 * The key is `Redacted`: it is sent only as `Authorization: Bearer`, and any text quoted from a
 * response in an error has it replaced by `<redacted>`.
 */
import * as OpenAiClient from "@effect/ai-openai/OpenAiClient"
import type * as AiError from "@effect/ai/AiError"
import * as HttpBody from "@effect/platform/HttpBody"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as LlmProvider from "./LlmProvider.js"
import { parseRetryAfter } from "./OpenAiEmbedder.js"

export interface Options {
  /** e.g. `https://api.openai.com/v1` or `http://localhost:11434/v1`. */
  readonly baseUrl: string
  readonly apiKey: Redacted.Redacted<string> | undefined
  /** The name the gateway knows it by (default `openai`). */
  readonly name?: string
}

const Usage = Schema.Struct({ prompt_tokens: Schema.Int, completion_tokens: Schema.Int })

const Completion = Schema.Struct({
  choices: Schema.NonEmptyArray(Schema.Struct({ message: Schema.Struct({ content: Schema.NullishOr(Schema.String) }) })),
  usage: Schema.NullishOr(Usage)
})
const decodeCompletion = Schema.decodeUnknownEither(Schema.parseJson(Completion))

const StreamChunk = Schema.Struct({
  choices: Schema.Array(Schema.Struct({ delta: Schema.Struct({ content: Schema.NullishOr(Schema.String) }) })),
  usage: Schema.NullishOr(Usage)
})

const snippet = (s: string, max = 300): string => (s.length > max ? `${s.slice(0, max)}…` : s)

/** Chat-completions messages; a JSON request gets a system line asking for a JSON object. */
export const body = (request: LlmProvider.Request, stream: boolean) => ({
  model: request.model,
  messages: request.messages.map((m) => ({ role: m.role, content: m.content })),
  ...(request.maxOutputTokens === undefined ? {} : { max_tokens: request.maxOutputTokens }),
  ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
  ...(request.json ? { response_format: { type: "json_object" } } : {}),
  ...(stream ? { stream: true, stream_options: { include_usage: true } } : {})
})

export const make = (options: Options): Effect.Effect<LlmProvider.Provider, never, HttpClient.HttpClient | Scope.Scope> =>
  Effect.gen(function*() {
    const name = options.name ?? "openai"
    const baseUrl = options.baseUrl.replace(/\/+$/, "")
    const key = options.apiKey === undefined ? "" : Redacted.value(options.apiKey)
    const scrub = (s: string): string => (key.length > 0 ? s.split(key).join("<redacted>") : s)
    const openai = yield* OpenAiClient.make({ apiUrl: baseUrl, apiKey: key.length > 0 ? options.apiKey : undefined })
    const http = yield* HttpClient.HttpClient

    const complete = (request: LlmProvider.Request): Effect.Effect<LlmProvider.Completion, LlmProvider.ProviderFailure> =>
      Effect.gen(function*() {
        const post = HttpClientRequest.post(`${baseUrl}/chat/completions`).pipe(
          HttpClientRequest.acceptJson,
          key.length > 0 && options.apiKey !== undefined ? HttpClientRequest.bearerToken(options.apiKey) : (r) => r,
          HttpClientRequest.bodyUnsafeJson(body(request, false))
        )
        const unavailable = (detail: string) =>
          new LlmProvider.ProviderFailure({ reason: "unavailable", detail: scrub(detail), retryable: true, retryAfterMs: undefined })
        const response = yield* http.execute(post).pipe(Effect.mapError((e) => unavailable(e.message)))
        const text = yield* response.text.pipe(Effect.mapError((e) => unavailable(`reading the response: ${e.message}`)))
        if (response.status < 200 || response.status >= 300) {
          const now = yield* Clock.currentTimeMillis
          return yield* LlmProvider.fromStatus(response.status, scrub(snippet(text)), parseRetryAfter(response.headers["retry-after"], now))
        }
        const decoded = decodeCompletion(text)
        if (Either.isLeft(decoded)) {
          return yield* new LlmProvider.ProviderFailure({
            reason: "bad_response",
            detail: scrub(`malformed response: ${snippet(ParseResult.TreeFormatter.formatErrorSync(decoded.left))}`),
            retryable: false,
            retryAfterMs: undefined
          })
        }
        const usage = decoded.right.usage
        return {
          text: decoded.right.choices[0].message.content ?? "",
          usage: usage === null || usage === undefined ? undefined : { inputTokens: usage.prompt_tokens, outputTokens: usage.completion_tokens }
        }
      })

    const stream = (request: LlmProvider.Request): Stream.Stream<LlmProvider.Chunk, LlmProvider.ProviderFailure> =>
      openai.streamRequest(HttpClientRequest.post("/chat/completions", { body: HttpBody.unsafeJson(body(request, true)) }), StreamChunk).pipe(
        Stream.mapConcat((chunk): ReadonlyArray<LlmProvider.Chunk> => [
          ...chunk.choices.flatMap((c): ReadonlyArray<LlmProvider.Chunk> =>
            c.delta.content === null || c.delta.content === undefined || c.delta.content === "" ? [] : [{ _tag: "Text", text: c.delta.content }]
          ),
          ...(chunk.usage === null || chunk.usage === undefined
            ? []
            : [{ _tag: "Usage", inputTokens: chunk.usage.prompt_tokens, outputTokens: chunk.usage.completion_tokens } as const])
        ]),
        Stream.catchAll((e) => Stream.fromEffect(Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.fail(fromAiError(e, scrub, now)))))
      )

    return { name, complete, stream }
  })

/** An `@effect/ai` error as a provider failure (status and `Retry-After` kept, key scrubbed). */
export const fromAiError = (error: AiError.AiError, scrub: (s: string) => string, now: number): LlmProvider.ProviderFailure => {
  switch (error._tag) {
    case "HttpResponseError": {
      const retryAfter = parseRetryAfter(error.response.headers["retry-after"], now)
      return LlmProvider.fromStatus(error.response.status, scrub(snippet(error.body ?? error.description ?? "")), retryAfter)
    }
    case "HttpRequestError":
      return new LlmProvider.ProviderFailure({ reason: "unavailable", detail: scrub(error.description ?? error.reason), retryable: true, retryAfterMs: undefined })
    default:
      return new LlmProvider.ProviderFailure({ reason: "bad_response", detail: scrub(snippet(error.message)), retryable: false, retryAfterMs: undefined })
  }
}
