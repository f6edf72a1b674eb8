/**
 * What a tool call can fail with. Each error has a stable `code` and a message that says which
 * tool, and for bad input which field, was wrong.
 */
import * as Schema from "effect/Schema"

/** No tool of that name is registered. */
export class ToolNotFound extends Schema.TaggedError<ToolNotFound>()("ToolNotFound", {
  tool: Schema.String
}) {
  readonly code = "tool_not_found"
  override get message() {
    return `no tool named ${this.tool} is registered`
  }
}

/** The input did not match the tool's schema; `field` is the path of the first wrong field ("items.0.quantity"). */
export class ToolInputInvalid extends Schema.TaggedError<ToolInputInvalid>()("ToolInputInvalid", {
  tool: Schema.String,
  field: Schema.String,
  detail: Schema.String
}) {
  readonly code = "tool_input_invalid"
  override get message() {
    return `${this.tool}: input field ${this.field === "" ? "(root)" : this.field}: ${this.detail}`
  }
}

/**
 * The tool ran and refused or failed. `retryable` failures (a timeout, a 5xx, a lost connection)
 * may succeed on another attempt; the others (a declined charge, an unknown order) will not.
 */
export class ToolFailed extends Schema.TaggedError<ToolFailed>()("ToolFailed", {
  tool: Schema.String,
  reason: Schema.String,
  retryable: Schema.Boolean
}) {
  readonly code = "tool_failed"
  override get message() {
    return `${this.tool} failed: ${this.reason}`
  }
}

/** The call took longer than its timeout. */
export class ToolTimeout extends Schema.TaggedError<ToolTimeout>()("ToolTimeout", {
  tool: Schema.String,
  timeoutMs: Schema.Number
}) {
  readonly code = "tool_timeout"
  override get message() {
    return `${this.tool} did not answer within ${this.timeoutMs} ms`
  }
}

/** The tool's circuit breaker for this tenant is open: recent calls failed; try again later. */
export class CircuitOpen extends Schema.TaggedError<CircuitOpen>()("CircuitOpen", {
  key: Schema.String,
  retryAfterMs: Schema.Number
}) {
  readonly code = "circuit_open"
  override get message() {
    return `circuit ${this.key} is open after repeated failures; retry in ${this.retryAfterMs} ms`
  }
}

/** Too many calls of this tool (or of this tenant) are in flight. */
export class BulkheadFull extends Schema.TaggedError<BulkheadFull>()("BulkheadFull", {
  key: Schema.String,
  limit: Schema.Int
}) {
  readonly code = "bulkhead_full"
  override get message() {
    return `${this.key} already has ${this.limit} calls in flight`
  }
}

export type ToolError = ToolNotFound | ToolInputInvalid | ToolFailed | ToolTimeout | CircuitOpen | BulkheadFull
