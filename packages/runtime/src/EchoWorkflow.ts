/**
 * The echo workflow: a built-in diagnostic plan that answers the run's input message verbatim.
 * It exercises the journal, recovery and events end to end with no model and no tool.
 *
 * A caller may hold the run before it answers with `context.echo_delay_ms` (0–10 000): the `hold`
 * step waits that long for a `release` signal (Run.Signal), which keeps a run in flight long
 * enough to cancel it or to kill its runner.
 */
import * as Either from "effect/Either"
import type * as WorkflowPlan from "./WorkflowPlan.js"

export const name = "echo"

const maxDelayMs = 10_000

const field = (value: unknown, key: string): unknown =>
  typeof value === "object" && value !== null && key in value ? Reflect.get(value, key) : undefined

const delay: WorkflowPlan.Value = (scope) => {
  const ms = field(scope.context, "echo_delay_ms")
  return Either.right(typeof ms === "number" && Number.isFinite(ms) ? Math.min(Math.max(0, ms), maxDelayMs) : 0)
}

const message: WorkflowPlan.Value = (scope) => {
  const text = field(scope.input, "message")
  return Either.right(typeof text === "string" ? text : "")
}

const common = { timeout: undefined, retry: undefined, onError: { _tag: "Fail" }, compensate: undefined } as const

export const plan: WorkflowPlan.Plan = {
  name,
  version: "1",
  start: "hold",
  steps: new Map<string, WorkflowPlan.Step>([
    ["hold", { id: "hold", kind: { _tag: "wait", signal: "release", timeout: delay, onTimeout: "echo" }, next: "echo", ...common }],
    ["echo", { id: "echo", kind: { _tag: "respond", answer: message, citations: undefined, escalated: undefined }, next: undefined, ...common }]
  ]),
  budgets: { wallMs: undefined, tokens: undefined, costUsd: undefined }
}
