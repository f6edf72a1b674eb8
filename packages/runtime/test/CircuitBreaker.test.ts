import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as TestClock from "effect/TestClock"
import * as CircuitBreaker from "../src/CircuitBreaker.js"

class Boom {
  readonly _tag = "Boom"
  constructor(readonly counted: boolean) {}
}

describe("CircuitBreaker", () => {
  it.effect("opens after 5 failures, half-opens after 60 s, closes on a successful trial", () =>
    Effect.gen(function*() {
      const breakers = yield* CircuitBreaker.make()
      let calls = 0
      const failing = Effect.suspend(() => {
        calls++
        return Effect.fail(new Boom(true))
      })
      const ok = Effect.sync(() => {
        calls++
        return "ok"
      })
      for (let i = 0; i < 5; i++) {
        assert.strictEqual((yield* Effect.flip(breakers.run("acme:http", failing)))._tag, "Boom")
      }
      assert.strictEqual((yield* breakers.state("acme:http"))._tag, "Open")
      // Open: refused without calling, with the time left.
      const refused = yield* Effect.flip(breakers.run("acme:http", ok))
      assert.strictEqual(refused._tag, "CircuitOpen")
      assert.strictEqual(refused._tag === "CircuitOpen" && refused.retryAfterMs, 60_000)
      assert.strictEqual(calls, 5)
      // Other tenants' breakers are untouched.
      assert.strictEqual(yield* breakers.run("globex:http", ok), "ok")

      yield* TestClock.adjust("59 seconds")
      const stillOpen = yield* Effect.flip(breakers.run("acme:http", ok))
      assert.strictEqual(stillOpen._tag === "CircuitOpen" && stillOpen.retryAfterMs, 1_000)

      // Half-open: a failed trial opens it for another 60 s.
      yield* TestClock.adjust("1 second")
      assert.strictEqual((yield* Effect.flip(breakers.run("acme:http", failing)))._tag, "Boom")
      assert.strictEqual((yield* Effect.flip(breakers.run("acme:http", ok)))._tag, "CircuitOpen")

      // A successful trial closes it; counting starts again from zero.
      yield* TestClock.adjust("60 seconds")
      assert.strictEqual(yield* breakers.run("acme:http", ok), "ok")
      assert.deepStrictEqual(yield* breakers.state("acme:http"), { _tag: "Closed", failures: 0 })
      for (let i = 0; i < 4; i++) yield* Effect.flip(breakers.run("acme:http", failing))
      assert.strictEqual(yield* breakers.run("acme:http", ok), "ok")
    }))

  it.effect("is configurable, and failures it is told not to count leave it closed", () =>
    Effect.gen(function*() {
      const breakers = yield* CircuitBreaker.make({ failureThreshold: 2, resetAfter: "10 seconds" })
      const declined = Effect.fail(new Boom(false))
      for (let i = 0; i < 10; i++) yield* Effect.flip(breakers.run("k", declined, (e) => e.counted))
      assert.strictEqual((yield* breakers.state("k"))._tag, "Closed")
      const broken = Effect.fail(new Boom(true))
      yield* Effect.flip(breakers.run("k", broken, (e) => e.counted))
      yield* Effect.flip(breakers.run("k", broken, (e) => e.counted))
      assert.strictEqual((yield* breakers.state("k"))._tag, "Open")
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual(yield* breakers.run("k", Effect.succeed(1)), 1)
    }))
})
