/**
 * The LLM gateway port: every `llm` and `route` step, and the chat path, call models through it.
 * Implementations choose the provider for the tenant's tier, retry, fail over, count tokens and
 * cost, and enforce the caller's token budget.
 */
import type { ClassifyRequest, ClassifyResponse, GenerateRequest, GenerateResponse, LlmError, OutputInvalid, TokenBudgetExceeded } from "@tessera/domain/Llm"
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Stream from "effect/Stream"

/** A piece of a streamed answer: text deltas in order, then one `done` with the full response. */
export type StreamPart =
  | { readonly _tag: "Delta"; readonly text: string }
  | { readonly _tag: "Done"; readonly response: GenerateResponse }

export type GenerateError = LlmError | TokenBudgetExceeded | OutputInvalid

export class LlmGateway extends Context.Tag("@tessera/runtime/LlmGateway")<LlmGateway, {
  readonly generate: (request: GenerateRequest) => Effect.Effect<GenerateResponse, GenerateError>
  readonly stream: (request: GenerateRequest) => Stream.Stream<StreamPart, GenerateError>
  readonly classify: (request: ClassifyRequest) => Effect.Effect<ClassifyResponse, LlmError>
}>() {}
