/**
 * The echo workflow: one step, `echo`, whose output is the run's input message, returned
 * verbatim. It exists so the Run journal, recovery and events can be exercised end to end before
 * the workflow engine lands; it is not an answer to the user and says so in its output.
 */
import * as Effect from "effect/Effect"

export interface Step {
  readonly id: string
  readonly kind: string
  readonly execute: (input: unknown) => Effect.Effect<unknown>
}

export const name = "echo"

const messageOf = (input: unknown): string =>
  typeof input === "object" && input !== null && "message" in input && typeof input.message === "string"
    ? input.message
    : ""

export const steps: ReadonlyArray<Step> = [
  {
    id: "echo",
    kind: "echo",
    execute: (input) => Effect.succeed({ echo: messageOf(input), note: "echo step: input returned unchanged" })
  }
]
