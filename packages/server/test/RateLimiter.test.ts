/**
 * Rate limits are exact under concurrency: N concurrent requests against a limit of L admit exactly
 * L — in the bucket script on the real Redis, in the in-process buckets, and through HTTP on a node
 * whose limiter is Redis (429 with Retry-After and RateLimit-* headers, the same code everywhere).
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { Database } from "@tessera/runtime/Database"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"
import { randomBytes } from "node:crypto"
import * as RateLimiter from "../src/RateLimiter.js"
import * as EdgeNode from "./EdgeNode.js"

const redisUrl = process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"
const prefix = () => `tessera:rl:test:${randomBytes(6).toString("hex")}:`

const concurrent = (n: number, limit: number) =>
  Effect.gen(function*() {
    const limiter = yield* RateLimiter.RateLimiter
    const buckets = [
      { key: "t:acme:k:key1", capacity: limit, refillPerSecond: 0.01 },
      { key: "t:acme", capacity: limit * 2, refillPerSecond: 0.01 }
    ]
    const decisions = yield* Effect.all(Array.from({ length: n }, () => limiter.check(buckets)), { concurrency: "unbounded" })
    return decisions
  })

describe("RateLimiter", () => {
  it.effect("Redis: 300 concurrent checks against a limit of 50 admit exactly 50", () =>
    Effect.gen(function*() {
      const decisions = yield* concurrent(300, 50)
      assert.strictEqual(decisions.filter((d) => d.allowed).length, 50)
      const refused = decisions.find((d) => !d.allowed)!
      assert.strictEqual(refused.remaining, 0)
      assert.isTrue(refused.retryAfterMs > 0)
    }).pipe(Effect.provide(RateLimiter.layerRedis(Redacted.make(redisUrl), prefix()))), { timeout: 30_000 })

  it.effect("in-process: 300 concurrent checks against a limit of 50 admit exactly 50; the bucket refills on the clock", () =>
    Effect.gen(function*() {
      const decisions = yield* concurrent(300, 50)
      assert.strictEqual(decisions.filter((d) => d.allowed).length, 50)
      const limiter = yield* RateLimiter.RateLimiter
      const bucket = [{ key: "t:refill", capacity: 60, refillPerSecond: 1 }]
      for (let i = 0; i < 60; i++) assert.isTrue((yield* limiter.check(bucket)).allowed)
      const denied = yield* limiter.check(bucket)
      assert.isFalse(denied.allowed)
      assert.strictEqual(denied.retryAfterMs, 1000)
      yield* TestClock.adjust("1 second")
      assert.isTrue((yield* limiter.check(bucket)).allowed)
      assert.isFalse((yield* limiter.check(bucket)).allowed)
    }).pipe(Effect.provide(RateLimiter.layerMemory)))
})

layer(EdgeNode.layer({ REDIS_URL: redisUrl, RATE_LIMIT_PREFIX: prefix() }), { timeout: 120_000, excludeTestServices: true })(
  "rate limits over HTTP",
  (it) => {
    it.effect("40 concurrent requests against a plan of 5 per minute: exactly 5 pass, 35 are 429 with Retry-After", () =>
      Effect.gen(function*() {
        const limited = yield* EdgeNode.tenant("limited", "free")
        const db = yield* Database
        yield* db.tenant("limited")(db.sql`UPDATE tenants SET limits = limits || '{"requestsPerMinute": 5}'::jsonb
          WHERE tenant_id = 'limited'`)
        const replies = yield* Effect.all(
          Array.from({ length: 40 }, () => EdgeNode.http("GET", "/v1/auth/whoami", { key: limited.key })),
          { concurrency: "unbounded" }
        )
        const ok = replies.filter((r) => r.status === 200)
        const refused = replies.filter((r) => r.status === 429)
        assert.strictEqual(ok.length, 5)
        assert.strictEqual(refused.length, 35)
        for (const reply of refused) {
          assert.strictEqual(reply.body.code, "rate_limited")
          assert.isTrue(Number(reply.headers.get("retry-after")) >= 1)
        }
        assert.strictEqual(ok[0]!.headers.get("ratelimit-limit"), "5")
        assert.isNotNull(ok[0]!.headers.get("ratelimit-remaining"))
        // Another tenant is not affected.
        const other = yield* EdgeNode.tenant("unlimited", "pro")
        assert.strictEqual((yield* EdgeNode.http("GET", "/v1/auth/whoami", { key: other.key })).status, 200)
      }))
  }
)
