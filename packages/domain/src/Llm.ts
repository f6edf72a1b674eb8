/**
 * Contracts of the LLM gateway: the tiers a step may ask for, a generation request and its
 * answer with usage and cost, a classification request, and the router's decision. Providers
 * (local, OpenAI-compatible, Anthropic) sit behind these; callers never see a vendor type.
 */
import * as Schema from "effect/Schema"

/** The three model tiers, cheapest first. Each tenant maps each tier to a provider and model. */
export const Tier = Schema.Literal("SLM_A", "SLM_B", "LLM")
export type Tier = typeof Tier.Type

/** What a step asks for: a tier, or `auto` for the router to decide. */
export const TierChoice = Schema.Literal("auto", "SLM_A", "SLM_B", "LLM")
export type TierChoice = typeof TierChoice.Type

export const LlmRole = Schema.Literal("system", "user", "assistant")
export type LlmRole = typeof LlmRole.Type

export class LlmMessage extends Schema.Class<LlmMessage>("LlmMessage")({
  role: LlmRole,
  content: Schema.String
}) {}

/** A retrieved passage the model may ground its answer in and cite by `id`. */
export class Passage extends Schema.Class<Passage>("Passage")({
  id: Schema.String,
  text: Schema.String,
  source: Schema.String,
  title: Schema.optionalWith(Schema.String, { default: () => "" }),
  score: Schema.optionalWith(Schema.Number, { default: () => 0 })
}) {}

export class Usage extends Schema.Class<Usage>("Usage")({
  inputTokens: Schema.Int,
  outputTokens: Schema.Int,
  /** True when the provider reported the counts; false when they are a tokenizer estimate. */
  reported: Schema.Boolean
}) {}

/**
 * Where a generation's text deltas go while it runs: the session whose clients follow the run
 * (`TokenStream`), the run and its step. Deltas are ephemeral; the response is the answer.
 */
export const StreamTarget = Schema.Struct({
  sessionId: Schema.String,
  runId: Schema.String,
  stepId: Schema.String
})
export type StreamTarget = typeof StreamTarget.Type

export class GenerateRequest extends Schema.Class<GenerateRequest>("GenerateRequest")({
  tenantId: Schema.String,
  tier: TierChoice,
  messages: Schema.NonEmptyArray(LlmMessage),
  /** Passages the answer should be grounded in (retrieve step output). */
  passages: Schema.optionalWith(Schema.Array(Passage), { default: () => [] }),
  /** A JSON schema the output must satisfy; the gateway repairs a bounded number of times. */
  outputSchema: Schema.optional(Schema.Unknown),
  maxOutputTokens: Schema.optional(Schema.Int.pipe(Schema.positive())),
  /** Tokens the caller may still spend (the step's and run's budget); exceeding it fails. */
  tokenBudget: Schema.optional(Schema.Int.pipe(Schema.nonNegative())),
  temperature: Schema.optional(Schema.Number),
  /** Free-form run context (e.g. the flow: order, lead, complaint) for templated local replies. */
  context: Schema.optionalWith(Schema.Record({ key: Schema.String, value: Schema.Unknown }), { default: () => ({}) }),
  /** Built from run id + step id: the same key is never billed twice. */
  idempotencyKey: Schema.optional(Schema.String),
  /** Publish the answer's text deltas to this target as they are generated. */
  stream: Schema.optional(StreamTarget)
}) {}

export class GenerateResponse extends Schema.Class<GenerateResponse>("GenerateResponse")({
  text: Schema.String,
  /** The parsed output when the request carried an `outputSchema`. */
  json: Schema.optional(Schema.Unknown),
  tier: Tier,
  provider: Schema.String,
  model: Schema.String,
  usage: Usage,
  costUsd: Schema.Number,
  /** Ids of the passages the answer cites. */
  citations: Schema.Array(Schema.String),
  /** False when the model says it cannot answer from what it was given (the workflow escalates). */
  answered: Schema.Boolean,
  cached: Schema.Boolean
}) {}

/** One label a classification may choose, with examples or keywords that describe it. */
export class Label extends Schema.Class<Label>("Label")({
  name: Schema.String,
  description: Schema.optionalWith(Schema.String, { default: () => "" }),
  examples: Schema.optionalWith(Schema.Array(Schema.String), { default: () => [] })
}) {}

export class ClassifyRequest extends Schema.Class<ClassifyRequest>("ClassifyRequest")({
  tenantId: Schema.String,
  tier: TierChoice,
  text: Schema.String,
  labels: Schema.NonEmptyArray(Label)
}) {}

export class ClassifyResponse extends Schema.Class<ClassifyResponse>("ClassifyResponse")({
  label: Schema.String,
  confidence: Schema.Number,
  tier: Tier,
  usage: Usage,
  costUsd: Schema.Number
}) {}

/** The router's answer for a step with tier `auto` (the seed's `router_response`). */
export class RouterDecision extends Schema.Class<RouterDecision>("RouterDecision")({
  tier: Tier,
  confidence: Schema.Number,
  reasoning: Schema.String,
  cost_estimate: Schema.Number,
  latency_estimate: Schema.Number
}) {}

/** A provider refused or failed; `retryable` errors were already retried by the gateway. */
export class LlmError extends Schema.TaggedError<LlmError>()("LlmError", {
  provider: Schema.String,
  reason: Schema.Literal("rate_limited", "unavailable", "bad_response", "refused", "timeout", "circuit_open", "not_configured"),
  detail: Schema.String
}) {
  readonly code = "llm_error"
  override get message() {
    return `LLM provider ${this.provider}: ${this.reason}: ${this.detail}`
  }
}

/** The request would spend more tokens than its budget allows. */
export class TokenBudgetExceeded extends Schema.TaggedError<TokenBudgetExceeded>()("TokenBudgetExceeded", {
  budget: Schema.Int,
  needed: Schema.Int
}) {
  readonly code = "token_budget_exceeded"
  override get message() {
    return `token budget exceeded: ${this.needed} tokens needed, ${this.budget} left`
  }
}

/** Structured output still failed its schema after the bounded repairs. */
export class OutputInvalid extends Schema.TaggedError<OutputInvalid>()("OutputInvalid", {
  attempts: Schema.Int,
  detail: Schema.String
}) {
  readonly code = "llm_output_invalid"
  override get message() {
    return `model output did not match its schema after ${this.attempts} attempts: ${this.detail}`
  }
}
