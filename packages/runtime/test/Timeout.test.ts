/**
 * Timeout.failAfter on the TestClock (how every timeout of a run is tested) and on the live clock
 * (its plain-timer path: a 10 ms deadline, nothing in the test sleeps).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as HashMap from "effect/HashMap"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import * as Timeout from "../src/Timeout.js"

class Greeting extends Context.Tag("test/Greeting")<Greeting, string>() {}

const timedOut = () => "timed out" as const

/** An effect that never ends and records that it was interrupted (and, if asked, that it started). */
const hanging = (stopped: Deferred.Deferred<void>, started?: Deferred.Deferred<void>) =>
  Effect.zipRight(
    started === undefined ? Effect.void : Deferred.succeed(started, undefined),
    Effect.never.pipe(Effect.onInterrupt(() => Deferred.succeed(stopped, undefined)))
  )

/** A caller waiting on a hanging effect is interrupted: the effect is interrupted too. */
const callerInterrupted = Effect.gen(function*() {
  const stopped = yield* Deferred.make<void>()
  const started = yield* Deferred.make<void>()
  const call = yield* Effect.fork(Timeout.failAfter(hanging(stopped, started), Duration.minutes(1), timedOut))
  yield* Deferred.await(started)
  yield* Fiber.interrupt(call)
  assert.isTrue(yield* Deferred.isDone(stopped))
})

describe("Timeout.failAfter", () => {
  it.effect("an effect that needs no waiting answers at once, with the caller's services and log annotations", () =>
    Effect.gen(function*() {
      const answer = yield* Timeout.failAfter(
        Effect.zipWith(Greeting, Effect.map(Effect.logAnnotations, HashMap.get("run_id")), (g: string, run: Option.Option<unknown>) => `${g} ${String(Option.getOrElse(run, () => "-"))}`),
        Duration.seconds(5),
        timedOut
      ).pipe(Effect.provideService(Greeting, "hello"), Effect.annotateLogs("run_id", "r1"))
      assert.strictEqual(answer, "hello r1")
    }))

  it.effect("on the TestClock: the effect is interrupted at the deadline, then the call fails", () =>
    Effect.gen(function*() {
      const stopped = yield* Deferred.make<void>()
      const call = yield* Effect.fork(Timeout.failAfter(hanging(stopped), Duration.seconds(5), timedOut))
      yield* TestClock.adjust("4999 millis")
      assert.isNull(call.unsafePoll())
      assert.isFalse(yield* Deferred.isDone(stopped))
      yield* TestClock.adjust("1 millis")
      assert.deepStrictEqual(yield* Fiber.await(call), Exit.fail("timed out"))
      assert.isTrue(yield* Deferred.isDone(stopped))
    }))

  it.effect("on the TestClock: an effect that ends before the deadline answers its value or its failure", () =>
    Effect.gen(function*() {
      const ok = yield* Effect.fork(Timeout.failAfter(Effect.as(Effect.sleep("1 second"), 42), Duration.seconds(5), timedOut))
      const failed = yield* Effect.fork(
        Timeout.failAfter(Effect.zipRight(Effect.sleep("1 second"), Effect.fail("boom")), Duration.seconds(5), timedOut)
      )
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* Fiber.await(ok), Exit.succeed(42))
      assert.deepStrictEqual(yield* Fiber.await(failed), Exit.fail("boom"))
    }))

  it.effect("on the TestClock: interrupting the caller interrupts the effect", () => callerInterrupted)

  it.live("on the live clock: a timer interrupts the effect at the deadline, an earlier end clears it, interrupting the caller interrupts the effect", () =>
    Effect.gen(function*() {
      const stopped = yield* Deferred.make<void>()
      const exit = yield* Effect.exit(Timeout.failAfter(hanging(stopped), Duration.millis(10), timedOut))
      assert.deepStrictEqual(exit, Exit.fail("timed out"))
      assert.isTrue(yield* Deferred.isDone(stopped))

      const ready = yield* Deferred.make<number>()
      const call = yield* Effect.fork(Timeout.failAfter(Deferred.await(ready), Duration.minutes(1), timedOut))
      yield* Deferred.succeed(ready, 7)
      assert.deepStrictEqual(yield* Fiber.await(call), Exit.succeed(7))

      yield* callerInterrupted
    }))
})
