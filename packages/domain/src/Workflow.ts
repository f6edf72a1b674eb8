/**
 * The workflow language: a YAML document (`workflows/*.yaml`, or a tenant's overlay) decoded with
 * these schemas. Strings marked *template* may hold `{{ expression }}` holes and strings marked
 * *expression* are one expression, both in the safe language of the runtime's `Expression`
 * module, over the run's scope `{ input, steps, context, run }` (`steps.<id>` is that step's
 * output).
 *
 * A workflow is a graph: execution starts at `start` (default: the first step) and follows each
 * step's `next` (absent: the workflow ends after it); `branch` and `route` steps choose their
 * successor. The only cycles allowed are bounded ones: a `validate` step's `repair` loop (at most
 * `repair.max` times), or a cycle through a step with `max_visits`. The executor also caps the
 * steps of one run (`max_steps`, and the node's `WORKFLOW_MAX_STEPS`).
 *
 * Fields common to every step:
 * - `id`: unique in the workflow; `steps.<id>` is the output of its latest execution.
 * - `next`: the step that follows (absent: the workflow ends after this one). Ignored by `branch`
 *   and `route` when one of their choices matches.
 * - `timeout`: the limit for one attempt; on expiry the attempt fails (and may be retried).
 * - `retry`: how often and how long apart failed attempts are repeated (see `Retry`).
 * - `on_error`: what happens when the step still fails after its retries (see `OnError`).
 * - `compensate`: the tool call that undoes the step once it has succeeded (see `ToolCall`).
 * - `max_visits`: how often one run may execute this step (default: unbounded, but then the
 *   step may not sit on a cycle). A visit beyond it fails the step, so `on_error` applies.
 */
import * as Schema from "effect/Schema"
import { TierChoice } from "./Llm.js"

/** Milliseconds, or an Effect duration string such as `"30 seconds"` or `"5 minutes"`. */
export const DurationInput = Schema.Union(
  Schema.Number.pipe(Schema.nonNegative()),
  Schema.String.pipe(Schema.pattern(/^\d+(\.\d+)? (nanos|micros|millis|seconds|minutes|hours|days|weeks)$/, {
    message: () => "expected milliseconds or a duration such as \"30 seconds\""
  }))
)

/**
 * Retries of a failed attempt (a timeout counts as a failure). Delay before retry n (1-based):
 * `exponential` = base · 2^(n-1), `fixed` = base; each capped at `max`, then multiplied by a
 * random factor in [1 - jitter, 1 + jitter]. Delays run on Effect's clock. A step without `retry`
 * uses its tool's default policy (tool steps) or none; with `on_error: retry`, the default below.
 */
export const Retry = Schema.Struct({
  /** Retries after the first attempt. */
  times: Schema.Int.pipe(Schema.between(0, 20)),
  backoff: Schema.optionalWith(Schema.Literal("exponential", "fixed"), { default: () => "exponential" as const }),
  base: Schema.optionalWith(DurationInput, { default: () => "1 seconds" }),
  /** Cap on one delay. */
  max: Schema.optionalWith(DurationInput, { default: () => "30 seconds" }),
  /** `true` = ±20 %, a number in [0, 1] = ± that share, `false` = none. */
  jitter: Schema.optionalWith(Schema.Union(Schema.Boolean, Schema.Number.pipe(Schema.between(0, 1))), {
    default: () => true
  })
})
export type Retry = typeof Retry.Type

/**
 * Values of a tool's (or sub-workflow's) input: every string is a template, numbers, booleans and
 * null stay as they are, lists and maps are rendered member by member. A string that is exactly
 * one `{{ expression }}` gives the expression's value with its type (a number, a list, an object);
 * any other string renders to text.
 */
export const InputMap = Schema.Record({ key: Schema.String, value: Schema.Unknown })

/**
 * A tool call that undoes a step (saga compensation). When a run fails (a step fails with
 * `on_error: fail`, a budget runs out, the step cap is hit), the compensations of the steps that
 * had succeeded run in reverse order of completion, each once and durably. `input` is rendered
 * with the scope of the moment the compensated step succeeded, so `steps.<id>` is that step's
 * output (e.g. `charge_id: "{{ steps.charge.charge_id }}"`).
 */
export const ToolCall = Schema.Struct({
  tool: Schema.String,
  input: Schema.optionalWith(InputMap, { default: () => ({}) })
})

/**
 * What happens when a step fails after its retries: `fail` (default: the run fails and its
 * compensations run), `retry` (a step without a `retry` block is retried 3 times, exponential
 * from 500 ms, at most 10 s apart, ±20 % jitter; then as `fail`),
 * `fallback:<step>` (go on at that step, with `steps.<id>.error` set), `escalate` (hand the
 * conversation to a human: a ticket is escalated and the run answers so), `continue` (go on at
 * `next` with `steps.<id>.error` set).
 */
export const OnError = Schema.String.pipe(Schema.pattern(/^(fail|retry|escalate|continue|fallback:[A-Za-z0-9_-]+)$/, {
  message: () => "expected fail, retry, escalate, continue or fallback:<step>"
}))

const common = {
  id: Schema.String.pipe(Schema.pattern(/^[A-Za-z][A-Za-z0-9_-]{0,63}$/, {
    message: () => "a step id is a letter then up to 63 letters, digits, '_' or '-'"
  })),
  description: Schema.optional(Schema.String),
  next: Schema.optional(Schema.String),
  timeout: Schema.optional(DurationInput),
  retry: Schema.optional(Retry),
  on_error: Schema.optionalWith(OnError, { default: () => "fail" }),
  compensate: Schema.optional(ToolCall),
  max_visits: Schema.optional(Schema.Int.pipe(Schema.between(1, 1000)))
}

/** A model call. Output: `{ text, json?, tier, tokens, cost_usd, citations, answered }`. */
export const LlmStep = Schema.Struct({
  ...common,
  kind: Schema.Literal("llm"),
  /** Template: the user prompt. */
  prompt: Schema.String,
  /** Template: the system prompt. */
  system: Schema.optional(Schema.String),
  /** `SLM_A`, `SLM_B`, `LLM`: that model tier; `auto` (default): the router picks per call. */
  tier: Schema.optionalWith(TierChoice, { default: () => "auto" as const }),
  /** A JSON schema the output must satisfy (structured output); the parsed value is `steps.<id>.json`. */
  output_schema: Schema.optional(Schema.Unknown),
  /** Template (one expression): passages to ground the answer in, e.g. `{{ steps.search.hits }}`. */
  passages: Schema.optional(Schema.String),
  max_output_tokens: Schema.optional(Schema.Int.pipe(Schema.positive()))
})

/**
 * A tool call: a built-in tool (`@tessera/domain/Tool`) or one registered for the tenant, with
 * `input` rendered from the scope and checked against the tool's input schema. Output: the tool's
 * output. Every call carries an idempotency key from the run and step ids.
 */
export const ToolStep = Schema.Struct({
  ...common,
  kind: Schema.Literal("tool"),
  tool: Schema.String,
  input: Schema.optionalWith(InputMap, { default: () => ({}) })
})

/**
 * Knowledge search (the `knowledge.search` tool on the tenant's knowledge base). Output:
 * `{ hits: [{ id, document_id, source_key, source, title, heading_path, text, score }], score }`,
 * `score` being the best hit's (0 when nothing matched).
 */
export const RetrieveStep = Schema.Struct({
  ...common,
  kind: Schema.Literal("retrieve"),
  /** Template. */
  query: Schema.String,
  top_k: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 50)), { default: () => 5 }),
  /** Only documents carrying every one of these tags (the knowledge store's `SearchQuery.tags`). */
  tags: Schema.optional(Schema.Array(Schema.String))
})

/** One label of a route step: its intent, a description and examples for the classifier, and where it goes. */
export const Route = Schema.Struct({
  intent: Schema.String,
  description: Schema.optionalWith(Schema.String, { default: () => "" }),
  examples: Schema.optionalWith(Schema.Array(Schema.String), { default: () => [] }),
  /** The step this intent goes to. */
  next: Schema.String
})

/**
 * Intent decision: classifies `text` over the routes' intents (their descriptions and examples
 * describe them; the model tier is `tier`, `auto` lets the router pick) and goes to the winner's
 * `next`; the step's own `next` when no route matches (a classifier answering an unknown label).
 * A route that should run a sub-workflow points at a `workflow` step. Output:
 * `{ intent, confidence, tier }`. (The model tier of `llm` steps is decided per step by their
 * `tier: auto`, so no route step is needed for a tier decision.)
 */
export const RouteStep = Schema.Struct({
  ...common,
  kind: Schema.Literal("route"),
  /** Template. */
  text: Schema.optionalWith(Schema.String, { default: () => "{{ input.message }}" }),
  tier: Schema.optionalWith(TierChoice, { default: () => "auto" as const }),
  routes: Schema.NonEmptyArray(Route)
})

/** The first branch whose `when` (expression) holds wins; `default` otherwise (or `next`). Output: `{ taken }`. */
export const BranchStep = Schema.Struct({
  ...common,
  kind: Schema.Literal("branch"),
  branches: Schema.NonEmptyArray(Schema.Struct({ when: Schema.String, next: Schema.String })),
  default: Schema.optional(Schema.String)
})

export const Gate = Schema.Union(
  /** The value satisfies a JSON schema. */
  Schema.Struct({ json_schema: Schema.Unknown }),
  /** An expression's number is at least `min`. */
  Schema.Struct({ score_threshold: Schema.Struct({ score: Schema.String, min: Schema.Number }) }),
  /** At least `min` of the value's content words occur in the passages (template, one expression). */
  Schema.Struct({ factuality: Schema.Struct({ passages: Schema.String, min: Schema.Number.pipe(Schema.between(0, 1)) }) }),
  /** A model judges the value against the criteria. */
  Schema.Struct({
    critic: Schema.Struct({
      criteria: Schema.String,
      tier: Schema.optionalWith(TierChoice, { default: () => "auto" as const })
    })
  })
)
export type Gate = typeof Gate.Type

/**
 * Gates on a value (template, usually one expression). When a gate fails: with `repair`, the run
 * goes back to `repair.step` (which produces a new value) at most `repair.max` times, and stops
 * early when a repair repeats a rejected value; without it, or when repairs run out, the step
 * fails (its `on_error` applies: `escalate` hands over to a human). Output:
 * `{ passed, failures, gates, repairs, value }` (`value`: the value checked, e.g. `steps.check.value`).
 */
export const ValidateStep = Schema.Struct({
  ...common,
  kind: Schema.Literal("validate"),
  value: Schema.String,
  gates: Schema.NonEmptyArray(Gate),
  repair: Schema.optional(Schema.Struct({ step: Schema.String, max: Schema.Int.pipe(Schema.between(1, 10)) }))
})

/**
 * Runs another workflow (by name, one of the set loaded together) as part of this run: its steps
 * are journaled in this run, count against its budgets and step cap, and its compensations join
 * this run's. `input` (templates) is the sub-workflow's `input`; by default the caller's message
 * and context. Output: the sub-workflow's answer (the output of its `respond` step).
 */
export const WorkflowStep = Schema.Struct({
  ...common,
  kind: Schema.Literal("workflow"),
  workflow: Schema.String,
  input: Schema.optionalWith(InputMap, {
    default: () => ({ message: "{{ input.message }}", context: "{{ input.context }}" })
  })
})

/**
 * Waits for a signal sent to the run (`Signal` with this name) up to `timeout`; then goes on at
 * `on_timeout` (fails the step when absent). Human approval is a signal too: by convention
 * `signal: approval`, with the payload `{ approved: boolean, by, note }` the approver sends.
 * Output: the signal's payload, or `{ timed_out: true }` when it went on at `on_timeout`.
 */
export const WaitStep = Schema.Struct({
  ...common,
  kind: Schema.Literal("wait"),
  signal: Schema.String,
  timeout: DurationInput,
  on_timeout: Schema.optional(Schema.String)
})

/** The run's answer (an `Answer`): `answer` template, `citations` and `escalated` expressions. */
export const RespondStep = Schema.Struct({
  ...common,
  kind: Schema.Literal("respond"),
  answer: Schema.String,
  citations: Schema.optional(Schema.String),
  escalated: Schema.optional(Schema.Union(Schema.Boolean, Schema.String))
})

export const stepSchemas = {
  llm: LlmStep,
  tool: ToolStep,
  retrieve: RetrieveStep,
  route: RouteStep,
  branch: BranchStep,
  validate: ValidateStep,
  workflow: WorkflowStep,
  wait: WaitStep,
  respond: RespondStep
} as const

export type StepKind = keyof typeof stepSchemas
export const stepKinds = Object.keys(stepSchemas) as ReadonlyArray<StepKind>

export const Step = Schema.Union(LlmStep, ToolStep, RetrieveStep, RouteStep, BranchStep, ValidateStep, WorkflowStep, WaitStep, RespondStep)
export type Step = typeof Step.Type

/** An intent that starts this workflow, with example phrases for the intent classifier. */
export const Trigger = Schema.Struct({
  intent: Schema.String,
  examples: Schema.optionalWith(Schema.Array(Schema.String), { default: () => [] })
})

/**
 * Limits of one run (sub-workflows included), checked after every step: wall-clock time since the
 * run started, model tokens and model cost. Exceeding one stops the run with a typed error and
 * runs its compensations. Absent: no limit of that kind.
 */
export const Budgets = Schema.Struct({
  wall_ms: Schema.optional(Schema.Int.pipe(Schema.positive())),
  tokens: Schema.optional(Schema.Int.pipe(Schema.positive())),
  cost_usd: Schema.optional(Schema.Number.pipe(Schema.positive()))
})

/** An input the workflow expects in `input.<key>` (`context` holds the caller's context): documentation for callers and tooling. */
export const InputSpec = Schema.Struct({
  type: Schema.Literal("string", "number", "boolean", "object", "array"),
  required: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  description: Schema.optional(Schema.String)
})

const name = Schema.String.pipe(Schema.pattern(/^[a-z][a-z0-9_]{0,63}$/, {
  message: () => "a workflow name is a lower-case letter then up to 63 of a-z, 0-9, '_'"
}))

/** The document's top level, steps still undecoded (each is decoded by its kind). */
export const WorkflowHeader = Schema.Struct({
  name,
  version: Schema.optionalWith(Schema.Union(Schema.String, Schema.Number), { default: () => "1" }),
  description: Schema.optionalWith(Schema.String, { default: () => "" }),
  /**
   * A tenant overlay: the name of the shared workflow it edits. Each of the overlay's `steps`
   * replaces, in place, the base step with the same id (an id the base lacks is an error); the
   * other base steps stay. Header keys the overlay sets (version, description, triggers, budgets,
   * inputs, start, max_steps) replace the base's. The decoded workflow keeps `extends`.
   */
  extends: Schema.optional(name),
  triggers: Schema.optionalWith(Schema.Array(Trigger), { default: () => [] }),
  budgets: Schema.optionalWith(Budgets, { default: () => ({}) }),
  inputs: Schema.optionalWith(Schema.Record({ key: Schema.String, value: InputSpec }), { default: () => ({}) }),
  /** The first step (default: the first in `steps`). */
  start: Schema.optional(Schema.String),
  /** Steps one run of this workflow may execute (sub-workflows included); the node's `WORKFLOW_MAX_STEPS` caps it too. */
  max_steps: Schema.optional(Schema.Int.pipe(Schema.between(1, 10_000))),
  steps: Schema.Array(Schema.Unknown)
})

/** A decoded, validated workflow. */
export interface Workflow extends Omit<typeof WorkflowHeader.Type, "steps" | "version"> {
  readonly version: string
  readonly start: string
  readonly steps: ReadonlyArray<Step>
}

/** `workflows/registry.yaml`: the workflows a node serves, with the intents that start them. */
export const Registry = Schema.Struct({
  workflows: Schema.Array(Schema.Struct({
    name,
    file: Schema.String,
    triggers: Schema.optionalWith(Schema.Array(Schema.String), { default: () => [] })
  }))
})

/** One problem in a workflow file, where it is. */
export class Diagnostic extends Schema.Class<Diagnostic>("Diagnostic")({
  file: Schema.String,
  line: Schema.Int,
  column: Schema.Int,
  /** e.g. `steps[2].next` */
  path: Schema.String,
  message: Schema.String
}) {
  override toString() {
    return `${this.file}:${this.line}:${this.column} ${this.path === "" ? "" : `${this.path}: `}${this.message}`
  }
}

export class WorkflowInvalid extends Schema.TaggedError<WorkflowInvalid>()("WorkflowInvalid", {
  diagnostics: Schema.Array(Diagnostic)
}) {
  readonly code = "workflow_invalid"
  override get message() {
    return this.diagnostics.map(String).join("\n")
  }
}
