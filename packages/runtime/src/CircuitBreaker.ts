/**
 * Circuit breakers, one per key (the runtime keys them per tenant and tool: `<tenant>:<tool>`).
 * A breaker is closed until `failureThreshold` consecutive counted failures (default 5); then it
 * is open and refuses calls at once with `CircuitOpen` for `resetAfter` (default 60 s); then
 * half-open: one trial call goes through, and its success closes the breaker while its failure
 * opens it again. Time is Effect's `Clock`, so tests drive it with `TestClock`.
 *
 * Configuration (`layerConfig`): `TOOL_BREAKER_FAILURES` (default 5), `TOOL_BREAKER_RESET`
 * (default "60 seconds").
 */
import { CircuitOpen } from "@tessera/domain/ToolError"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"

export interface Options {
  readonly failureThreshold: number
  readonly resetAfter: Duration.DurationInput
}

export const defaults: Options = { failureThreshold: 5, resetAfter: Duration.seconds(60) }

export type State =
  | { readonly _tag: "Closed"; readonly failures: number }
  | { readonly _tag: "Open"; readonly until: number }
  | { readonly _tag: "HalfOpen" }

const closed: State = { _tag: "Closed", failures: 0 }

export const make = (options: Options = defaults) =>
  Effect.sync(() => {
    const states = new Map<string, State>()
    const resetMs = Duration.toMillis(options.resetAfter)

    const state = (key: string): State => states.get(key) ?? closed

    /**
     * Runs `effect` through the breaker of `key`. Only failures for which `counts` answers true
     * (default: every failure) count against it; an interruption never does.
     */
    const run = <A, E, R>(
      key: string,
      effect: Effect.Effect<A, E, R>,
      counts: (error: E) => boolean = () => true
    ): Effect.Effect<A, E | CircuitOpen, R> =>
      Effect.flatMap(Clock.currentTimeMillis, (now): Effect.Effect<A, E | CircuitOpen, R> => {
        const current = state(key)
        if (current._tag === "Open" && now < current.until) {
          return Effect.fail(new CircuitOpen({ key, retryAfterMs: current.until - now }))
        }
        if (current._tag === "HalfOpen") {
          // A trial call is already in flight.
          return Effect.fail(new CircuitOpen({ key, retryAfterMs: 0 }))
        }
        const trial = current._tag === "Open"
        if (trial) states.set(key, { _tag: "HalfOpen" })
        return Effect.onExit(effect, (exit) =>
          Effect.flatMap(Clock.currentTimeMillis, (end) =>
            Effect.sync(() => {
              if (Exit.isSuccess(exit)) {
                states.set(key, closed)
                return
              }
              const failure = Cause.failureOption(exit.cause)
              const counted = Option.isSome(failure) ? counts(failure.value) : !Cause.isInterruptedOnly(exit.cause)
              if (!counted) {
                // An inconclusive trial: the next call may try again.
                if (trial) states.set(key, { _tag: "Open", until: end })
                return
              }
              const before = state(key)
              const failures = before._tag === "Closed" ? before.failures + 1 : options.failureThreshold
              states.set(
                key,
                trial || failures >= options.failureThreshold ? { _tag: "Open", until: end + resetMs } : { _tag: "Closed", failures }
              )
            })
          ))
      })

    return { run, state: (key: string) => Effect.sync(() => state(key)) } as const
  })

export class CircuitBreakers extends Effect.Service<CircuitBreakers>()("@tessera/runtime/CircuitBreakers", {
  effect: make()
}) {}

/** Breakers with these thresholds. */
export const layerWith = (options: Options): Layer.Layer<CircuitBreakers> =>
  Layer.effect(CircuitBreakers, Effect.map(make(options), (breakers) => CircuitBreakers.make(breakers)))

/** Breakers with the defaults: open after 5 failures, half-open after 60 s. */
export const layer: Layer.Layer<CircuitBreakers> = CircuitBreakers.Default

/** `TOOL_BREAKER_FAILURES`, `TOOL_BREAKER_RESET`. */
export const layerConfig: Layer.Layer<CircuitBreakers, never> = Layer.unwrapEffect(
  Effect.map(
    Config.all({
      failureThreshold: Config.integer("TOOL_BREAKER_FAILURES").pipe(Config.withDefault(defaults.failureThreshold)),
      resetAfter: Config.duration("TOOL_BREAKER_RESET").pipe(Config.withDefault(Duration.seconds(60)))
    }),
    layerWith
  )
).pipe(Layer.orDie)
