/**
 * The gateway's side of the token channel. A generate request that names a stream target
 * (`request.stream`) has the text of its answer published on the `TokenStream` while the caller
 * still gets the whole response, with budgets, cache and failover unchanged:
 * - a remote provider's answer is generated through the provider's stream, each text chunk
 *   published as it arrives (`complete`, in place of the provider's `complete`);
 * - an answer that exists whole at once is published once the gateway has chosen it
 *   (`publishingWhole`): the local model's in word-sized deltas, a cached one as one delta.
 * Each answer attempt numbers its deltas from 0, so a retried, repaired or escalated attempt
 * tells the followers to start the step's text anew.
 */
import type { GenerateRequest, GenerateResponse, StreamTarget } from "@tessera/domain/Llm"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type * as LlmProvider from "./LlmProvider.js"
import * as LocalModel from "./LocalModel.js"
import { TokenDelta, type TokenStream } from "./TokenStream.js"

/** Publishes one attempt's deltas, numbered from 0; empty ones are skipped. */
const publisher = (tokens: TokenStream["Type"], tenantId: string, target: StreamTarget) => {
  let seq = 0
  return (text: string): Effect.Effect<void> =>
    text.length === 0
      ? Effect.void
      : Effect.suspend(() =>
        tokens.publish(
          new TokenDelta({ tenantId, sessionId: target.sessionId, runId: target.runId, stepId: target.stepId, seq: seq++, text })
        )
      )
}

/**
 * One remote completion. With a stream target it goes through the provider's stream, each text
 * chunk published as it arrives, and answers the same `Completion` as the provider's `complete`.
 */
export const complete = (
  tokens: TokenStream["Type"] | undefined,
  request: GenerateRequest,
  provider: LlmProvider.Provider,
  asked: LlmProvider.Request
): Effect.Effect<LlmProvider.Completion, LlmProvider.ProviderFailure> => {
  const target = request.stream
  if (tokens === undefined || target === undefined) return provider.complete(asked)
  return Effect.suspend(() => {
    const publish = publisher(tokens, request.tenantId, target)
    const parts: Array<string> = []
    let inputTokens: number | undefined
    let outputTokens: number | undefined
    return provider.stream(asked).pipe(
      Stream.runForEach((chunk) => {
        if (chunk._tag === "Text") {
          parts.push(chunk.text)
          return publish(chunk.text)
        }
        inputTokens = chunk.inputTokens ?? inputTokens
        outputTokens = chunk.outputTokens ?? outputTokens
        return Effect.void
      }),
      Effect.map((): LlmProvider.Completion => ({
        text: parts.join(""),
        usage: inputTokens !== undefined && outputTokens !== undefined ? { inputTokens, outputTokens } : undefined
      }))
    )
  })
}

/** The answer's text when it was not streamed as generated: word-sized deltas for the local model, one delta when cached. */
const publishWhole = (tokens: TokenStream["Type"], request: GenerateRequest, target: StreamTarget, response: GenerateResponse) => {
  if (!response.cached && response.provider !== LocalModel.provider) return Effect.void
  const publish = publisher(tokens, request.tenantId, target)
  return Effect.forEach(response.cached ? [response.text] : LocalModel.deltasOf(response.text), publish, { discard: true })
}

/** `generate` that also publishes the answers that came whole (local, cached) of requests with a stream target. */
export const publishingWhole = <E>(
  tokens: TokenStream["Type"] | undefined,
  generate: (request: GenerateRequest) => Effect.Effect<GenerateResponse, E>
): (request: GenerateRequest) => Effect.Effect<GenerateResponse, E> =>
  tokens === undefined ? generate : (request) => {
    const target = request.stream
    return target === undefined ? generate(request) : Effect.tap(generate(request), (response) => publishWhole(tokens, request, target, response))
  }
