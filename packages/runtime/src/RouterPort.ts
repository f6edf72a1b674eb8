/**
 * The router as the gateway sees it: a decision for a request with tier `auto`, and the outcome
 * of the tier that served it (the bandit learns from outcomes). `Router.ts` implements it.
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
  readonly decided: Decision
  /** The tier that served the request (after any escalation). */
  readonly tier: Tier
  /** The decided tier's answer passed validation (no escalation needed). */
  readonly passed: boolean
  /** The final answer (after any escalation) passed. */
  readonly answered: boolean
  readonly repairs: number
  readonly costUsd: number
  /** Explicit feedback: +1 / -1, when a user gave it. */
  readonly feedback?: number
}

export class RouterPort extends Context.Tag("@tessera/runtime/RouterPort")<RouterPort, {
  readonly decide: (request: RouteRequest) => Effect.Effect<Decision>
  readonly record: (outcome: Outcome) => Effect.Effect<void>
}>() {}
