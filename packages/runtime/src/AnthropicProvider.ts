/**
 * The `anthropic` provider: the Messages API through `@effect/ai-anthropic`'s `AnthropicClient`
 * (`createMessage`, `createMessageStream`). System messages become the `system` field; the key
 * travels in `x-api-key` (a redacted header) and is scrubbed from anything quoted in an error.
 */
import * as AnthropicClient from "@effect/ai-anthropic/AnthropicClient"
import type * as HttpClient from "@effect/platform/HttpClient"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as LlmProvider from "./LlmProvider.js"
import { fromAiError } from "./OpenAiProvider.js"

export interface Options {
  /** Default `https://api.anthropic.com`. */
  readonly baseUrl: string | undefined
  readonly apiKey: Redacted.Redacted<string> | undefined
}

/** Anthropic requires `max_tokens`; this is used when the request sets none. */
export const defaultMaxTokens = 1024

export const payload = (request: LlmProvider.Request) => {
  const system = request.messages.filter((m) => m.role === "system").map((m) => m.content)
  const json = request.json ? ["Reply with one JSON object only, no prose."] : []
  return {
    model: request.model,
    max_tokens: request.maxOutputTokens ?? defaultMaxTokens,
    messages: request.messages.filter((m) => m.role !== "system").map((m) => ({ role: m.role === "assistant" ? "assistant" as const : "user" as const, content: m.content })),
    ...(system.length + json.length === 0 ? {} : { system: [...system, ...json].join("\n\n") }),
    ...(request.temperature === undefined ? {} : { temperature: request.temperature })
  }
}

export const make = (options: Options): Effect.Effect<LlmProvider.Provider, never, HttpClient.HttpClient | Scope.Scope> =>
  Effect.gen(function*() {
    const key = options.apiKey === undefined ? "" : Redacted.value(options.apiKey)
    const scrub = (s: string): string => (key.length > 0 ? s.split(key).join("<redacted>") : s)
    const client = yield* AnthropicClient.make({
      apiUrl: options.baseUrl?.replace(/\/+$/, ""),
      apiKey: key.length > 0 ? options.apiKey : undefined
    })
    const failure = (e: Parameters<typeof fromAiError>[0]) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.fail(fromAiError(e, scrub, now)))

    const complete = (request: LlmProvider.Request): Effect.Effect<LlmProvider.Completion, LlmProvider.ProviderFailure> =>
      client.createMessage({ payload: payload(request) }).pipe(
        Effect.catchAll(failure),
        Effect.map((message) => ({
          text: message.content.flatMap((block) => block.type === "text" ? [block.text] : []).join(""),
          usage: { inputTokens: message.usage.input_tokens, outputTokens: message.usage.output_tokens }
        }))
      )

    const stream = (request: LlmProvider.Request): Stream.Stream<LlmProvider.Chunk, LlmProvider.ProviderFailure> =>
      client.createMessageStream({ payload: payload(request) }).pipe(
        Stream.catchAll((e) => Stream.fromEffect(failure(e))),
        Stream.flatMap((event): Stream.Stream<LlmProvider.Chunk, LlmProvider.ProviderFailure> => {
          switch (event.type) {
            case "message_start":
              return Stream.make<[LlmProvider.Chunk]>({ _tag: "Usage", inputTokens: event.message.usage.input_tokens, outputTokens: undefined })
            case "content_block_delta":
              return event.delta.type === "text_delta" ? Stream.make<[LlmProvider.Chunk]>({ _tag: "Text", text: event.delta.text }) : Stream.empty
            case "message_delta":
              return Stream.make<[LlmProvider.Chunk]>({ _tag: "Usage", inputTokens: undefined, outputTokens: event.usage.output_tokens ?? undefined })
            case "error":
              return Stream.fail(
                new LlmProvider.ProviderFailure({
                  reason: event.error.type === "rate_limit_error" ? "rate_limited" : event.error.type === "overloaded_error" || event.error.type === "api_error" ? "unavailable" : "refused",
                  detail: scrub(event.error.message),
                  retryable: ["rate_limit_error", "overloaded_error", "api_error"].includes(event.error.type),
                  retryAfterMs: undefined
                })
              )
            default:
              return Stream.empty
          }
        })
      )

    return { name: "anthropic", complete, stream }
  })
