/**
 * The echo workflow: one step, `echo`, whose output is the run's input message, returned
 * verbatim. It exists so the Run journal, recovery and events can be exercised end to end before
 * the workflow engine lands; it is not an answer to the user and says so in its output.
 *
 * A caller may ask the step to hold before answering with `context.echo_delay_ms` (0–10 000),
 * which keeps a run in flight long enough to cancel it or to kill its runner.
 */
import * as Effect from "effect/Effect"

export interface Step {
  readonly id: string
  readonly kind: string
  readonly execute: (input: unknown) => Effect.Effect<unknown>
}

export const name = "echo"

const maxDelayMs = 10_000

const field = (value: unknown, key: string): unknown =>
  typeof value === "object" && value !== null && key in value ? Reflect.get(value, key) : undefined

const messageOf = (input: unknown): string => {
  const message = field(input, "message")
  return typeof message === "string" ? message : ""
}

const delayOf = (input: unknown): number => {
  const delay = field(field(input, "context"), "echo_delay_ms")
  return typeof delay === "number" && Number.isFinite(delay) ? Math.min(Math.max(0, delay), maxDelayMs) : 0
}

export const steps: ReadonlyArray<Step> = [
  {
    id: "echo",
    kind: "echo",
    execute: (input) =>
      Effect.as(Effect.sleep(delayOf(input)), {
        echo: messageOf(input),
        note: "echo step: input returned unchanged"
      })
  }
]
