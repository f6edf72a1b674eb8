import { assert, describe, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import * as RetryPolicy from "../src/RetryPolicy.js"

/** An effect that fails `failures` times and records the clock at each attempt. */
const flaky = (failures: number) => {
  const attempts: Array<number> = []
  const effect = Effect.flatMap(Clock.currentTimeMillis, (now) => {
    attempts.push(now)
    return attempts.length <= failures ? Effect.fail(`failure ${attempts.length}`) : Effect.succeed(attempts.length)
  })
  return { attempts, effect }
}

/** Drives the clock forward in small steps until the fiber is done. */
const drive = <A, E>(fiber: Fiber.RuntimeFiber<A, E>) =>
  Effect.gen(function*() {
    for (let i = 0; i < 10_000; i++) {
      const done = yield* fiber.poll
      if (done._tag === "Some") break
      yield* TestClock.adjust("10 millis")
    }
    return yield* Fiber.join(fiber)
  })

describe("RetryPolicy", () => {
  it.effect("exponential backoff doubles from base, is capped at max, stays within the jitter band", () =>
    Effect.gen(function*() {
      const policy: RetryPolicy.RetryPolicy = {
        times: 5,
        backoff: "exponential",
        base: Duration.millis(100),
        max: Duration.millis(500),
        jitter: 0.2
      }
      const { attempts, effect } = flaky(5)
      const result = yield* drive(yield* Effect.fork(RetryPolicy.retry(effect, policy)))
      assert.strictEqual(result, 6)
      const gaps = attempts.slice(1).map((t, i) => t - attempts[i]!)
      const expected = [100, 200, 400, 500, 500]
      gaps.forEach((gap, i) => {
        // ±20 % jitter, plus the 10 ms steps the test clock is moved in.
        assert.isAtLeast(gap, expected[i]! * 0.8, `retry ${i + 1}: ${gap} ms`)
        assert.isAtMost(gap, expected[i]! * 1.2 + 10, `retry ${i + 1}: ${gap} ms`)
      })
      // Jitter really varies the delays (five identical factors are vanishingly unlikely).
      assert.isAbove(new Set(gaps.map((g, i) => Math.round(g / expected[i]! * 100))).size, 1)
    }))

  it.effect("fixed backoff waits base each time and gives up after `times` retries with the last error", () =>
    Effect.gen(function*() {
      const policy: RetryPolicy.RetryPolicy = {
        times: 2,
        backoff: "fixed",
        base: Duration.seconds(1),
        max: Duration.seconds(1),
        jitter: 0
      }
      const { attempts, effect } = flaky(10)
      const fiber = yield* Effect.fork(RetryPolicy.retry(effect, policy))
      yield* TestClock.adjust("999 millis")
      assert.strictEqual(attempts.length, 1)
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(attempts.length, 2)
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* Effect.flip(Fiber.join(fiber)), "failure 3")
      assert.deepStrictEqual(attempts, [0, 1000, 2000])
    }))

  it.effect("errors that are not retryable fail at once", () =>
    Effect.gen(function*() {
      const { attempts, effect } = flaky(3)
      const policy: RetryPolicy.RetryPolicy = { ...RetryPolicy.none, times: 3, base: Duration.seconds(1), max: Duration.seconds(1) }
      const error = yield* Effect.flip(RetryPolicy.retry(effect, policy, () => false))
      assert.strictEqual(error, "failure 1")
      assert.strictEqual(attempts.length, 1)
    }))
})
