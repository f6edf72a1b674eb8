/**
 * A workflow compiled for execution: a graph of steps whose templates and conditions are already
 * compiled to functions of the run's scope (`{ input, steps, context, run }`). The executor
 * (WorkflowExecutor) walks it on the run journal; the compiler (WorkflowCompiler) builds it from
 * a validated workflow document.
 */
import type { TierChoice } from "@tessera/domain/Llm"
import type * as Duration from "effect/Duration"
import type * as Either from "effect/Either"
import type { RetryPolicy } from "./RetryPolicy.js"

/** What expressions see. `steps.<id>` is the output of the step's latest execution. */
export interface Scope {
  readonly input: unknown
  readonly steps: Readonly<Record<string, unknown>>
  readonly context: Readonly<Record<string, unknown>>
  readonly run: {
    readonly id: string
    readonly tenant_id: string
    readonly workflow: string
    readonly session_id: string | null
    readonly user_id: string | null
  }
}

/** A compiled template or expression; Left carries why it could not be evaluated. */
export type Value = (scope: Scope) => Either.Either<unknown, string>

export type OnError =
  | { readonly _tag: "Fail" }
  | { readonly _tag: "Retry" }
  | { readonly _tag: "Fallback"; readonly step: string }
  | { readonly _tag: "Escalate" }
  | { readonly _tag: "Continue" }

export interface ToolCallSpec {
  readonly tool: string
  readonly input: Value
}

export type Gate =
  | { readonly _tag: "JsonSchema"; readonly schema: unknown }
  | { readonly _tag: "ScoreThreshold"; readonly score: Value; readonly min: number }
  /** The text's content words must be found in the passages at least `min` (0-1) of the time. */
  | { readonly _tag: "Factuality"; readonly passages: Value; readonly min: number }
  /** A model judges the text against `criteria`. */
  | { readonly _tag: "Critic"; readonly criteria: string; readonly tier: TierChoice }

export interface Label {
  readonly name: string
  readonly description: string
  readonly examples: ReadonlyArray<string>
  /** Where the run goes when this label wins; the step's `next` otherwise. */
  readonly next: string | undefined
}

export type Kind =
  | { readonly _tag: "tool"; readonly call: ToolCallSpec }
  | {
    readonly _tag: "retrieve"
    readonly query: Value
    readonly topK: number
    /** Only documents carrying every one of these tags. */
    readonly tags?: ReadonlyArray<string>
  }
  | {
    readonly _tag: "llm"
    readonly prompt: Value
    readonly system: Value | undefined
    readonly tier: TierChoice
    readonly outputSchema: unknown
    readonly passages: Value | undefined
    readonly maxOutputTokens: number | undefined
  }
  | { readonly _tag: "route"; readonly text: Value; readonly labels: ReadonlyArray<Label>; readonly tier: TierChoice }
  | {
    readonly _tag: "branch"
    readonly branches: ReadonlyArray<{ readonly when: Value; readonly next: string }>
    readonly otherwise: string | undefined
  }
  | {
    readonly _tag: "validate"
    readonly value: Value
    readonly gates: ReadonlyArray<Gate>
    /** On a failed gate: go back to `step` (which produces a new value), at most `max` times. */
    readonly repair: { readonly step: string; readonly max: number } | undefined
  }
  | { readonly _tag: "workflow"; readonly workflow: string; readonly input: Value }
  | {
    readonly _tag: "wait"
    readonly signal: string
    /** Milliseconds, or a duration ("10 minutes"); an expression may compute it. */
    readonly timeout: Value
    readonly onTimeout: string | undefined
  }
  | {
    readonly _tag: "respond"
    readonly answer: Value
    readonly citations: Value | undefined
    readonly escalated: Value | undefined
  }

export interface Step {
  readonly id: string
  readonly kind: Kind
  /** The step after this one; undefined ends the workflow. Branch and route steps choose their own. */
  readonly next: string | undefined
  readonly timeout: Duration.Duration | undefined
  readonly retry: RetryPolicy | undefined
  readonly onError: OnError
  /** Undoes the step on compensation; a tool step without one uses its tool's default. */
  readonly compensate: ToolCallSpec | undefined
  /** A visit beyond this many fails the step (its `onError` applies); absent: unbounded. */
  readonly maxVisits?: number
}

export interface Budgets {
  readonly wallMs: number | undefined
  readonly tokens: number | undefined
  readonly costUsd: number | undefined
}

export interface Plan {
  readonly name: string
  readonly version: string
  readonly start: string
  readonly steps: ReadonlyMap<string, Step>
  readonly budgets: Budgets
  /** The workflow's own cap on the steps of a run (the node's cap applies too). */
  readonly maxSteps?: number
}
