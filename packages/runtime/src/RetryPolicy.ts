/**
 * A step's retry policy (the workflow's `retry:` block, or a tool's default) as an Effect
 * `Schedule`: up to `times` retries, delays `base`, then (exponential) doubling, each capped at
 * `max`, then multiplied by a random factor in [1 - jitter, 1 + jitter]. Delays run on Effect's
 * clock, so tests drive them with `TestClock`.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"

export interface RetryPolicy {
  readonly times: number
  readonly backoff: "exponential" | "fixed"
  readonly base: Duration.Duration
  readonly max: Duration.Duration
  /** 0 = none; 0.2 = ±20 %. */
  readonly jitter: number
}

export const none: RetryPolicy = {
  times: 0,
  backoff: "fixed",
  base: Duration.zero,
  max: Duration.zero,
  jitter: 0
}

/** The delay before retry number `attempt` (1-based), before jitter. */
export const delay = (policy: RetryPolicy, attempt: number): Duration.Duration => {
  const raw = policy.backoff === "exponential"
    ? Duration.times(policy.base, 2 ** (attempt - 1))
    : policy.base
  return Duration.min(raw, policy.max)
}

/** Retries while `retryable` holds for the error, as the policy says. */
export const schedule = <E>(
  policy: RetryPolicy,
  retryable: (error: E) => boolean = () => true
): Schedule.Schedule<number, E> => {
  const jitter = Math.min(Math.max(policy.jitter, 0), 1)
  return Schedule.recurs(policy.times).pipe(
    Schedule.modifyDelayEffect((attempt) => {
      const base = delay(policy, attempt + 1)
      return jitter === 0
        ? Effect.succeed(base)
        : Effect.map(Random.nextRange(1 - jitter, 1 + jitter), (factor) => Duration.times(base, factor))
    }),
    Schedule.whileInput(retryable)
  )
}

/** Runs `effect`, retrying as the policy says while the error is `retryable`. */
export const retry = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  policy: RetryPolicy,
  retryable: (error: E) => boolean = () => true
): Effect.Effect<A, E, R> => policy.times <= 0 ? effect : Effect.retry(effect, schedule(policy, retryable))
