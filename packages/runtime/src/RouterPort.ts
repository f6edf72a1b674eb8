/**
 * The router as the gateway and the workflow executor see it: a decision for a request with tier
 * `auto`, the outcome of the tier that served it, and the later verdicts on that answer (a
 * `validate` step's, with its repairs); the bandit learns from all of them. `Router.ts`
 * implements it.
 */
import type { RouterDecision, Tier } from "@tessera/domain/Llm"
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"

export interface RouteRequest {
  readonly tenantId: string
  readonly text: string
  /** The output must satisfy a JSON schema. */
  readonly strict: boolean
  /** The tenant's plan (`free`, `pro`, `enterprise`), when the caller knows it. */
  readonly plan: string | undefined
}

export interface Decision {
  readonly decision: RouterDecision
  /** The feature vector the decision was made on (kept for the outcome). */
  readonly features: ReadonlyArray<number>
  /** Which policy decided: the tenant's current one or the canary. */
  readonly policy: "control" | "canary"
}

export interface Outcome {
  readonly tenantId: string
  /**
   * The gateway request's idempotency key, `<run id>:<journal step id>` for a run's step: later
   * verdicts on the run (`observe`, feedback) reach the decision through it.
   */
  readonly key?: string
  readonly decided: Decision
  /** The tier that served the request (after any escalation). */
  readonly tier: Tier
  /** The decided tier's answer passed validation (no escalation needed). */
  readonly passed: boolean
  /** The final answer (after any escalation) passed. */
  readonly answered: boolean
  readonly repairs: number
  readonly costUsd: number
}

/** A `validate` step's verdict on the run's latest routed answer. */
export interface Verdict {
  readonly tenantId: string
  readonly runId: string
  readonly passed: boolean
  /** Repairs the step has asked for so far. */
  readonly repairs: number
}

export class RouterPort extends Context.Tag("@tessera/runtime/RouterPort")<RouterPort, {
  readonly decide: (request: RouteRequest) => Effect.Effect<Decision>
  readonly record: (outcome: Outcome) => Effect.Effect<void>
  readonly observe: (verdict: Verdict) => Effect.Effect<void>
}>() {}
