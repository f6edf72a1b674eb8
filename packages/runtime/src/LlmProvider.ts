/**
 * A remote model provider as the gateway sees it: one chat completion, as a whole or streamed,
 * and failures classified so the gateway knows whether to retry (rate limits, 5xx, transport),
 * fail over, or give up. Adapters: `OpenAiProvider` (chat completions, any OpenAI-compatible
 * server) and `AnthropicProvider` (messages). Neither retries on its own: the gateway does.
 */
import type { LlmMessage } from "@tessera/domain/Llm"
import * as Data from "effect/Data"
import type * as Effect from "effect/Effect"
import type * as Stream from "effect/Stream"

export interface Request {
  readonly model: string
  readonly messages: ReadonlyArray<LlmMessage>
  readonly maxOutputTokens: number | undefined
  readonly temperature: number | undefined
  /** Ask for a JSON object (OpenAI `response_format`; a system instruction elsewhere). */
  readonly json: boolean
}

export interface Completion {
  readonly text: string
  /** Provider-reported usage, when the response carried it. */
  readonly usage: { readonly inputTokens: number; readonly outputTokens: number } | undefined
}

export type Chunk =
  | { readonly _tag: "Text"; readonly text: string }
  | { readonly _tag: "Usage"; readonly inputTokens: number | undefined; readonly outputTokens: number | undefined }

/** A failed call. `retryable`: 429, 5xx, transport errors; `retryAfterMs` from `Retry-After`. */
export class ProviderFailure extends Data.TaggedError("ProviderFailure")<{
  readonly reason: "rate_limited" | "unavailable" | "bad_response" | "refused" | "timeout"
  readonly detail: string
  readonly retryable: boolean
  readonly retryAfterMs: number | undefined
}> {}

export interface Provider {
  readonly name: string
  readonly complete: (request: Request) => Effect.Effect<Completion, ProviderFailure>
  readonly stream: (request: Request) => Stream.Stream<Chunk, ProviderFailure>
}

/** A failure from an HTTP status, its body quoted (already scrubbed of secrets) in the detail. */
export const fromStatus = (status: number, detail: string, retryAfterMs: number | undefined): ProviderFailure =>
  new ProviderFailure({
    reason: status === 429 ? "rate_limited" : status >= 500 ? "unavailable" : status === 408 ? "timeout" : "refused",
    detail: `HTTP ${status}: ${detail}`,
    retryable: status === 429 || status === 408 || status >= 500,
    retryAfterMs
  })
