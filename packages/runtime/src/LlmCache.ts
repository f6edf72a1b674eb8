/**
 * The gateway's response cache: a tenant's answer to the same prompt on the same model, for a
 * TTL. Keys are `<prefix><tenant>:<provider>:<model>:<sha256 of the request>` so tenants never
 * share an entry. In Redis when `REDIS_URL` is set (ioredis, `SET … PX`), in process otherwise.
 */
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import { Redis } from "ioredis"
import { createHash } from "node:crypto"

export interface LlmCache {
  /** A cached value; a cache that cannot be reached answers none (it never fails a call). */
  readonly get: (key: string) => Effect.Effect<Option.Option<string>>
  readonly set: (key: string, value: string, ttlMs: number) => Effect.Effect<void>
}

export const key = (tenantId: string, provider: string, model: string, request: unknown): string =>
  `${tenantId}:${provider}:${model}:${createHash("sha256").update(JSON.stringify(request)).digest("hex")}`

/** In process; expiry on Effect's clock; at most `maxEntries` (oldest dropped first). */
export const memory = (maxEntries = 10_000): Effect.Effect<LlmCache> =>
  Effect.sync(() => {
    const entries = new Map<string, { readonly value: string; readonly until: number }>()
    return {
      get: (k) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const entry = entries.get(k)
          if (entry === undefined) return Option.none()
          if (entry.until <= now) {
            entries.delete(k)
            return Option.none()
          }
          return Option.some(entry.value)
        }),
      set: (k, value, ttlMs) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          entries.delete(k)
          entries.set(k, { value, until: now + ttlMs })
          if (entries.size > maxEntries) entries.delete(entries.keys().next().value!)
        })
    }
  })

/** In Redis at `url`, under `prefix`; the connection closes with the scope. */
export const redis = (url: Redacted.Redacted, prefix: string): Effect.Effect<LlmCache, never, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(
      Effect.sync(() => new Redis(Redacted.value(url), { lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: true })),
      (client) => Effect.promise(() => client.quit().catch(() => "closed"))
    ),
    (client): LlmCache => ({
      get: (k) =>
        Effect.tryPromise(() => client.get(`${prefix}${k}`)).pipe(
          Effect.map(Option.fromNullable),
          Effect.catchAll((error) => Effect.as(Effect.logWarning(`LLM cache unavailable: ${String(error)}`), Option.none()))
        ),
      set: (k, value, ttlMs) =>
        Effect.tryPromise(() => client.set(`${prefix}${k}`, value, "PX", Math.max(1, Math.round(ttlMs)))).pipe(
          Effect.asVoid,
          Effect.catchAll((error) => Effect.logWarning(`LLM cache unavailable: ${String(error)}`))
        )
    })
  )

/** Redis when `REDIS_URL` is set (`LLM_CACHE_PREFIX`, default `tessera:llm:`), in process otherwise. */
export const fromConfig: Effect.Effect<LlmCache, ConfigError.ConfigError, Scope.Scope> = Effect.gen(function*() {
  const url = yield* Config.option(Config.redacted("REDIS_URL"))
  const prefix = yield* Config.string("LLM_CACHE_PREFIX").pipe(Config.withDefault("tessera:llm:"))
  return Option.isSome(url) ? yield* redis(url.value, prefix) : yield* memory()
})
