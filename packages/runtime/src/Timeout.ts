/**
 * A timeout for the hot path: every tool call of every run step has one. `Effect.timeoutFail`
 * races the effect against a sleep in two child fibers (each started on a later tick), interrupts
 * the loser and merges the winner's fiber refs back; on a no-op tool call that was ≈ 80 % of the
 * call's CPU.
 *
 * `failAfter` starts the effect at once in a fiber of its own, on the caller's runtime (its
 * services, fiber refs, span and clock). An effect that ends without waiting — a tool that had
 * nothing to wait for — is answered there and then, with no timer. Otherwise the caller waits for
 * the fiber's exit or the deadline, whichever comes first: on the live clock with a plain timer,
 * on any other (the `TestClock`) through `Effect.timeoutFail`, so simulated time drives it in
 * tests. At the deadline the fiber is interrupted, and once it has stopped the call fails with
 * `onTimeout()`; interrupting the caller interrupts the fiber.
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as DefaultServices from "effect/DefaultServices"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Runtime from "effect/Runtime"

const liveClock = Context.get(DefaultServices.liveServices, Clock.Clock)

/** The longest delay a Node timer takes (longer ones fire at once). */
const maxTimerMillis = 2 ** 31 - 1

const onLiveClock = <A, E, E2>(fiber: Fiber.RuntimeFiber<A, E>, millis: number, onTimeout: () => E2) =>
  Effect.async<A, E | E2>((resume) => {
    let settled = false
    const timer = setTimeout(() => {
      if (settled) return
      settled = true
      resume(Effect.zipRight(Fiber.interrupt(fiber), Effect.fail(onTimeout())))
    }, millis)
    fiber.addObserver((exit) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      resume(exit)
    })
    return Effect.suspend(() => {
      settled = true
      clearTimeout(timer)
      return Fiber.interrupt(fiber)
    })
  })

const onAnyClock = <A, E, E2>(fiber: Fiber.RuntimeFiber<A, E>, duration: Duration.Duration, onTimeout: () => E2) =>
  Effect.flatten(Fiber.await(fiber)).pipe(
    Effect.timeoutFail({ duration, onTimeout }),
    Effect.ensuring(Fiber.interrupt(fiber))
  )

/** Fails with `onTimeout()` when `self` has not ended within `duration`, interrupting it first. */
export const failAfter = <A, E, R, E2>(
  self: Effect.Effect<A, E, R>,
  duration: Duration.Duration,
  onTimeout: () => E2
): Effect.Effect<A, E | E2, R> =>
  Effect.flatMap(Effect.runtime<R>(), (runtime) => {
    const fiber = Runtime.runFork(runtime)(self)
    const ended = fiber.unsafePoll()
    if (ended !== null) return ended
    return Effect.clockWith((clock) => {
      const millis = Duration.toMillis(duration)
      return clock === liveClock && millis <= maxTimerMillis
        ? onLiveClock(fiber, millis, onTimeout)
        : onAnyClock(fiber, duration, onTimeout)
    })
  })
