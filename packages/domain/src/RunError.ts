/**
 * Why a workflow run stopped. The executor journals the error's message on the failed step and
 * the run (`agent_runs.error`), and runs the compensations of the steps that completed.
 */
import * as Schema from "effect/Schema"

export const BudgetKind = Schema.Literal("wall_ms", "tokens", "cost_usd")
export type BudgetKind = typeof BudgetKind.Type

/** The run used more of a budget than its workflow allows. */
export class BudgetExceeded extends Schema.TaggedError<BudgetExceeded>()("BudgetExceeded", {
  budget: BudgetKind,
  limit: Schema.Number,
  used: Schema.Number
}) {
  readonly code = "budget_exceeded"
  override get message() {
    return `run budget ${this.budget} exceeded: used ${this.used}, limit ${this.limit}`
  }
}

/** The run executed more steps than allowed (a loop that did not end). */
export class StepLimitExceeded extends Schema.TaggedError<StepLimitExceeded>()("StepLimitExceeded", {
  limit: Schema.Int
}) {
  readonly code = "step_limit_exceeded"
  override get message() {
    return `run executed more than ${this.limit} steps`
  }
}

/** A validate step's repair loop came back to an output it had already rejected, or ran out of repairs. */
export class RepairLoopDetected extends Schema.TaggedError<RepairLoopDetected>()("RepairLoopDetected", {
  step: Schema.String,
  repairs: Schema.Int,
  reason: Schema.String
}) {
  readonly code = "repair_loop"
  override get message() {
    return `step ${this.step}: repair loop stopped after ${this.repairs} repairs: ${this.reason}`
  }
}

/** A step that needs a model ran on a node with no LLM gateway. */
export class LlmGatewayMissing extends Schema.TaggedError<LlmGatewayMissing>()("LlmGatewayMissing", {
  step: Schema.String,
  kind: Schema.String
}) {
  readonly code = "llm_gateway_missing"
  override get message() {
    return `step ${this.step} (${this.kind}) needs the LLM gateway (@tessera/runtime/LlmGateway), but this node provides none`
  }
}

export class StepTimeout extends Schema.TaggedError<StepTimeout>()("StepTimeout", {
  step: Schema.String,
  timeoutMs: Schema.Number
}) {
  readonly code = "step_timeout"
  override get message() {
    return `step ${this.step} did not finish within ${this.timeoutMs} ms`
  }
}

export class WaitTimedOut extends Schema.TaggedError<WaitTimedOut>()("WaitTimedOut", {
  step: Schema.String,
  signal: Schema.String,
  timeoutMs: Schema.Number
}) {
  readonly code = "wait_timed_out"
  override get message() {
    return `step ${this.step} waited ${this.timeoutMs} ms for signal ${this.signal}, which never came`
  }
}

/** A step failed; `cause` is the message of what it failed with. */
export class StepFailed extends Schema.TaggedError<StepFailed>()("StepFailed", {
  step: Schema.String,
  code: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `step ${this.step} failed (${this.code}): ${this.reason}`
  }
}

/** The run names a workflow the registry does not have (for the run's tenant). */
export class WorkflowNotFound extends Schema.TaggedError<WorkflowNotFound>()("WorkflowNotFound", {
  workflow: Schema.String
}) {
  readonly code = "workflow_not_found"
  override get message() {
    return `no workflow named ${this.workflow} is registered`
  }
}
