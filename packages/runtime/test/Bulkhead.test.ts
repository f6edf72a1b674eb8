import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import * as Bulkhead from "../src/Bulkhead.js"

describe("Bulkhead", () => {
  it.effect("limits calls in flight per tool and per tenant; a waiting call gets the permit or BulkheadFull after maxWait", () =>
    Effect.gen(function*() {
      const bulkheads = yield* Bulkhead.make({ perTool: 2, perTenant: 2, maxWait: "1 second" })
      const gate = yield* Deferred.make<void>()
      const held = (tenant: string, tool: string) => Effect.fork(bulkheads.run(tenant, tool, Deferred.await(gate)))

      const a = yield* held("acme", "http")
      const b = yield* held("globex", "http")
      yield* Effect.yieldNow()
      // The tool's two permits are taken (across tenants): a third call waits, then gives up.
      const third = yield* Effect.fork(bulkheads.run("initech", "http", Effect.succeed("late")))
      yield* Effect.yieldNow()
      yield* TestClock.adjust("1 second")
      const full = yield* Effect.flip(Fiber.join(third))
      assert.deepStrictEqual([full._tag, full.key, full.limit], ["BulkheadFull", "tool:http", 2])

      // Another tool is not affected, until the tenant's own limit (2) is reached.
      const c = yield* held("acme", "orders.get")
      yield* Effect.yieldNow()
      const d = yield* held("acme", "orders.track")
      yield* Effect.yieldNow()
      yield* TestClock.adjust("1 second")
      const tenantFull = yield* Effect.flip(Fiber.join(d))
      assert.deepStrictEqual([tenantFull._tag, tenantFull.key], ["BulkheadFull", "tenant:acme"])

      // A call that waits less than maxWait gets its permit when one is released.
      const waiting = yield* Effect.fork(bulkheads.run("initech", "http", Effect.succeed("in")))
      yield* Effect.yieldNow()
      yield* TestClock.adjust("500 millis")
      yield* Deferred.succeed(gate, undefined)
      assert.strictEqual(yield* Fiber.join(waiting), "in")
      yield* Fiber.join(a)
      yield* Fiber.join(b)
      yield* Fiber.join(c)
    }))
})
