/**
 * Token buckets for request rates: one per tenant and one per API key, capacity = the plan's
 * requests per minute, refilled continuously. A check takes one token from every bucket it names
 * or from none, atomically, so N concurrent requests against a limit of L admit exactly L.
 *
 * - `layerRedis`: the buckets live in Redis (`REDIS_URL`) and one Lua script checks them all
 *   (on Redis's own clock), so every node shares them.
 * - `layerMemory`: in-process buckets, for a single node.
 * - `layerConfig`: Redis when `REDIS_URL` is set, in-process otherwise.
 */
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import type { ConfigError } from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { Redis } from "ioredis"

export class RateLimiterError extends Schema.TaggedError<RateLimiterError>()("RateLimiterError", {
  reason: Schema.String
}) {
  readonly code = "rate_limiter_unavailable"
  override get message() {
    return `the rate limiter failed: ${this.reason}`
  }
}

export interface Bucket {
  /** Unique per bucket; carries the tenant (e.g. `t:<tenant>` or `t:<tenant>:k:<key id>`). */
  readonly key: string
  /** Tokens when full. */
  readonly capacity: number
  /** Tokens added per second. */
  readonly refillPerSecond: number
}

export interface Decision {
  readonly allowed: boolean
  /** The fewest tokens left in any of the buckets. */
  readonly remaining: number
  /** The tightest bucket's capacity (the `RateLimit-Limit`). */
  readonly limit: number
  /** Seconds until the tightest bucket is full again. */
  readonly resetSeconds: number
  /** When refused: milliseconds until the request would be admitted. */
  readonly retryAfterMs: number
}

export class RateLimiter extends Context.Tag("@tessera/server/RateLimiter")<RateLimiter, {
  readonly check: (buckets: ReadonlyArray<Bucket>) => Effect.Effect<Decision, RateLimiterError>
}>() {}

interface State {
  readonly tokens: number
  readonly at: number
}

const refill = (state: State | undefined, bucket: Bucket, now: number): number =>
  state === undefined
    ? bucket.capacity
    : Math.min(bucket.capacity, state.tokens + (Math.max(0, now - state.at) * bucket.refillPerSecond) / 1000)

/** In-process buckets: the check runs synchronously, so concurrent checks cannot interleave. */
export const layerMemory: Layer.Layer<RateLimiter> = Layer.sync(RateLimiter, () => {
  const states = new Map<string, State>()
  return RateLimiter.of({
    check: (buckets) =>
      Effect.map(Clock.currentTimeMillis, (now): Decision => {
        const tokens = buckets.map((b) => refill(states.get(b.key), b, now))
        const allowed = tokens.every((t) => t >= 1)
        const left = allowed ? tokens.map((t) => t - 1) : tokens
        if (allowed) buckets.forEach((b, i) => states.set(b.key, { tokens: left[i]!, at: now }))
        const retryAfterMs = allowed
          ? 0
          : Math.max(0, ...buckets.map((b, i) => tokens[i]! >= 1 ? 0 : Math.ceil(((1 - tokens[i]!) * 1000) / b.refillPerSecond)))
        const tightest = left.reduce((m, t, i) => (t < left[m]! ? i : m), 0)
        const bucket = buckets[tightest]
        return bucket === undefined
          ? { allowed, remaining: 0, limit: 0, resetSeconds: 0, retryAfterMs }
          : {
            allowed,
            remaining: Math.max(0, Math.floor(left[tightest]!)),
            limit: bucket.capacity,
            resetSeconds: Math.ceil((bucket.capacity - left[tightest]!) / bucket.refillPerSecond),
            retryAfterMs
          }
      })
  })
})

/**
 * KEYS: the buckets. ARGV: capacity and refill per millisecond of each, in order. Takes one token
 * from each bucket if every one has a token; returns {allowed, remaining, limit, reset s, retry ms}
 * for the tightest bucket.
 */
const script = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = #KEYS
local tokens = {}
local allowed = 1
local retry = 0
for i = 1, n do
  local cap = tonumber(ARGV[2 * i - 1])
  local rate = tonumber(ARGV[2 * i])
  local s = redis.call('HMGET', KEYS[i], 'tokens', 'at')
  local tk = tonumber(s[1])
  local at = tonumber(s[2])
  if tk == nil then tk = cap else tk = math.min(cap, tk + math.max(0, now - at) * rate) end
  tokens[i] = tk
  if tk < 1 then
    allowed = 0
    local wait = math.ceil((1 - tk) / rate)
    if wait > retry then retry = wait end
  end
end
local minLeft = nil
local limit = 0
local reset = 0
for i = 1, n do
  local cap = tonumber(ARGV[2 * i - 1])
  local rate = tonumber(ARGV[2 * i])
  local left = tokens[i]
  if allowed == 1 then
    left = left - 1
    redis.call('HSET', KEYS[i], 'tokens', tostring(left), 'at', tostring(now))
    redis.call('PEXPIRE', KEYS[i], math.ceil(cap / rate) + 1000)
  end
  if minLeft == nil or left < minLeft then
    minLeft = left
    limit = cap
    reset = math.ceil((cap - left) / rate / 1000)
  end
end
return {allowed, math.floor(minLeft), limit, reset, retry}
`

const decodeReply = (reply: unknown): Decision | undefined => {
  if (!Array.isArray(reply) || reply.length !== 5 || !reply.every((v) => typeof v === "number")) return undefined
  const [allowed, remaining, limit, reset, retry] = reply as ReadonlyArray<number>
  return {
    allowed: allowed === 1,
    remaining: Math.max(0, remaining!),
    limit: limit!,
    resetSeconds: reset!,
    retryAfterMs: retry!
  }
}

/** Buckets in Redis at `url`, under `prefix`; the connection closes with the scope. */
export const layerRedis = (url: Redacted.Redacted, prefix = "tessera:rl:"): Layer.Layer<RateLimiter, RateLimiterError> =>
  Layer.scoped(
    RateLimiter,
    Effect.gen(function*() {
      const redis = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: async () => {
            const client = new Redis(Redacted.value(url), { lazyConnect: true, maxRetriesPerRequest: 2, enableOfflineQueue: true })
            await client.connect()
            return client
          },
          catch: (error) => new RateLimiterError({ reason: `cannot connect to Redis: ${String(error)}` })
        }),
        (client) => Effect.promise(() => client.quit().catch(() => "closed"))
      )
      const sha = yield* Effect.tryPromise({
        try: () => redis.script("LOAD", script),
        catch: (error) => new RateLimiterError({ reason: `cannot load the bucket script: ${String(error)}` })
      })
      const run = (keys: ReadonlyArray<string>, args: ReadonlyArray<string>) =>
        redis.evalsha(String(sha), keys.length, ...keys, ...args).catch((error: unknown) =>
          // Redis restarted and lost its script cache: send the script itself.
          String(error).includes("NOSCRIPT") ? redis.eval(script, keys.length, ...keys, ...args) : Promise.reject(error)
        )
      return RateLimiter.of({
        check: (buckets) =>
          Effect.tryPromise({
            try: () =>
              run(
                buckets.map((b) => `${prefix}${b.key}`),
                buckets.flatMap((b) => [String(b.capacity), String(b.refillPerSecond / 1000)])
              ),
            catch: (error) => new RateLimiterError({ reason: String(error) })
          }).pipe(
            Effect.flatMap((reply) => {
              const decision = decodeReply(reply)
              return decision === undefined
                ? Effect.fail(new RateLimiterError({ reason: `unexpected reply ${JSON.stringify(reply)}` }))
                : Effect.succeed(decision)
            })
          )
      })
    })
  )

/** Redis when `REDIS_URL` is set (`RATE_LIMIT_PREFIX`, default `tessera:rl:`), in-process buckets otherwise. */
export const layerConfig: Layer.Layer<RateLimiter, RateLimiterError | ConfigError> = Layer.unwrapEffect(
  Effect.gen(function*() {
    const url = yield* Config.option(Config.redacted("REDIS_URL"))
    const prefix = yield* Config.string("RATE_LIMIT_PREFIX").pipe(Config.withDefault("tessera:rl:"))
    return Option.isSome(url) ? layerRedis(url.value, prefix) : layerMemory
  })
)
