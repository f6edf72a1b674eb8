/**
 * A tool the workflow executor may call: typed input and output schemas, a timeout and retry
 * default, whether it is idempotent, whether its effects live in the tenant's Postgres (then they
 * commit in the same transaction as the call's idempotency record), and the compensation that
 * undoes it. `make` erases the types so tools of every shape sit in one registry; the erased
 * `invoke` decodes its input (a `ToolInputInvalid` names the first wrong field) and encodes its
 * output to JSON.
 */
import type { SqlError } from "@effect/sql/SqlError"
import { ToolFailed, ToolInputInvalid } from "@tessera/domain/ToolError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as RetryPolicy from "./RetryPolicy.js"

/** Who is calling: the tenant, the run and step, and the call's idempotency key. */
export interface ToolContext {
  readonly tenantId: string
  readonly runId: string
  readonly stepId: string
  readonly sessionId: string | null
  /** run id + step id (+ the attempt, for idempotent tools only): the same key never acts twice. */
  readonly idempotencyKey: string
}

/** A tool call that undoes another: run on saga compensation. */
export interface Compensation {
  readonly tool: string
  readonly input: unknown
}

export interface Spec<I, IE, O, OE> {
  readonly name: string
  readonly description: string
  readonly input: Schema.Schema<I, IE>
  readonly output: Schema.Schema<O, OE>
  readonly timeout: Duration.DurationInput
  readonly retry: RetryPolicy.RetryPolicy
  /** Calling it twice has the effect of calling it once (reads, searches). */
  readonly idempotent: boolean
  /**
   * Its effects are writes to the tenant's Postgres: they run inside the transaction that records
   * the call's idempotency key and result, so they happen exactly once.
   */
  readonly transactional: boolean
  readonly compensate?: (input: I, output: O) => Compensation
  readonly run: (input: I, context: ToolContext) => Effect.Effect<O, ToolFailed>
}

export interface Tool {
  readonly name: string
  readonly description: string
  readonly timeout: Duration.Duration
  readonly retry: RetryPolicy.RetryPolicy
  readonly idempotent: boolean
  readonly transactional: boolean
  /** Decodes, runs and answers the JSON encoding of the output. */
  readonly invoke: (input: unknown, context: ToolContext) => Effect.Effect<unknown, ToolInputInvalid | ToolFailed>
  /** The compensation of a call that returned `output` for `input`, if the tool has one. */
  readonly compensation: (input: unknown, output: unknown) => Compensation | undefined
}

/** The path of the first issue ("items.0.quantity") and what was wrong there. */
export const firstIssue = (error: ParseResult.ParseError): { readonly field: string; readonly detail: string } => {
  const issues = ParseResult.ArrayFormatter.formatErrorSync(error)
  const first = issues[0]
  return first === undefined
    ? { field: "", detail: error.message }
    : { field: first.path.map(String).join("."), detail: first.message }
}

/** A storage failure inside a tool: retryable (the transaction did not commit). */
export const storageFailure = (tool: string) => (error: SqlError): ToolFailed =>
  new ToolFailed({ tool, reason: `storage: ${error.message}`, retryable: true })

/** Retry defaults: none for calls whose failure is an answer, three quick ones for flaky I/O. */
export const noRetry: RetryPolicy.RetryPolicy = RetryPolicy.none
export const ioRetry: RetryPolicy.RetryPolicy = {
  times: 3,
  backoff: "exponential",
  base: Duration.millis(200),
  max: Duration.seconds(5),
  jitter: 0.2
}

export const make = <I, IE, O, OE>(spec: Spec<I, IE, O, OE>): Tool => {
  const decode = Schema.decodeUnknownEither(spec.input, { errors: "first", onExcessProperty: "ignore" })
  const encodeOutput = Schema.encodeEither(spec.output)
  const decodeOutput = Schema.decodeUnknownEither(spec.output)

  const decodeInput = (input: unknown) =>
    Either.mapLeft(decode(input), (error) => new ToolInputInvalid({ tool: spec.name, ...firstIssue(error) }))

  return {
    name: spec.name,
    description: spec.description,
    timeout: Duration.decode(spec.timeout),
    retry: spec.retry,
    idempotent: spec.idempotent,
    transactional: spec.transactional,
    invoke: (input, context) =>
      Effect.flatMap(decodeInput(input), (decoded) =>
        Effect.flatMap(spec.run(decoded, context), (output) =>
          Either.match(encodeOutput(output), {
            onLeft: (error) =>
              Effect.fail(new ToolFailed({ tool: spec.name, reason: `invalid output: ${error.message}`, retryable: false })),
            onRight: Effect.succeed
          }))),
    compensation: (input, output) => {
      if (spec.compensate === undefined) return undefined
      const i = decode(input)
      const o = decodeOutput(output)
      return Either.isRight(i) && Either.isRight(o) ? spec.compensate(i.right, o.right) : undefined
    }
  }
}
