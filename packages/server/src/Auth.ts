/**
 * Authentication of HTTP requests and WebSocket connections. A credential is an API key
 * (`Authorization: Bearer tsk_…` or `X-API-Key: tsk_…`) or an access token (`Authorization:
 * Bearer <JWT>`, see Jwt). The caller's tenant comes from the credential alone. Every
 * authenticated request then takes a token from its tenant's and its key's rate buckets (the
 * plan's requests per minute); over either, 429 with the delay.
 *
 * A node keeps live API keys it has seen for `API_KEY_CACHE_TTL` (default 5 seconds): a key
 * revoked or rotated through this node stops working here at once, on other nodes within the TTL.
 * An access token exchanged for an API key carries the key's id and lives only as long as the key:
 * it is checked against the same cache on every request, so once the key is revoked, expired or
 * rotated past its overlap the token is refused (401 `credential_revoked`), here at once, on other
 * nodes within the TTL. A user's token (no key behind it) lives until its expiry.
 *
 * A request is authenticated once: the result is kept in its RequestContext, so the idempotency
 * layer and the route may both ask.
 */
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import type { SqlError } from "@effect/sql/SqlError"
import { Forbidden, TooManyRequests, Unauthorized, Unavailable } from "@tessera/domain/ApiErrors"
import { Scope } from "@tessera/domain/ApiKey"
import { Authentication } from "@tessera/domain/Authentication"
import { TenantId } from "@tessera/domain/Ids"
import { PlanLimits } from "@tessera/domain/Plan"
import { Principal } from "@tessera/domain/Principal"
import * as ApiKeys from "@tessera/runtime/ApiKeys"
import { Database } from "@tessera/runtime/Database"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { Jwt } from "./Jwt.js"
import { RateLimiter } from "./RateLimiter.js"
import * as RequestContext from "./RequestContext.js"

/** How long a tenant's plan limits are cached by a node. */
const limitsTtlMs = 10_000

export type AuthError = Unauthorized | TooManyRequests | Unavailable

const unauthorized = (code: string, message: string) => new Unauthorized({ code, message })

const unavailable = (error: SqlError | { readonly message: string }) =>
  new Unavailable({ code: "storage_unavailable", message: `authentication could not complete: ${error.message}` })

/** Refuses a request whose JSON body (as the edge read it) names a tenant other than the credential's. */
const sameTenant = (context: Option.Option<RequestContext.RequestContext>, principal: Principal): Effect.Effect<void, Forbidden> => {
  const named = Option.isSome(context) ? context.value.bodyTenant : undefined
  return named === undefined || named.value === principal.tenantId
    ? Effect.void
    : Effect.fail(
      new Forbidden({
        code: "tenant_mismatch",
        message: `${named.field} in the body is not the tenant of the credential`,
        details: { field: named.field }
      })
    )
}

/** The credential presented: the bearer value, else `X-API-Key`; undefined when neither is there. */
export const credentialOf = (headers: Readonly<Record<string, string | undefined>>, query?: URLSearchParams): string | undefined => {
  const authorization = headers["authorization"]
  if (authorization !== undefined && /^bearer /i.test(authorization)) return authorization.slice(7).trim()
  const key = headers["x-api-key"]
  if (key !== undefined && key !== "") return key.trim()
  const fromQuery = query?.get("access_token") ?? query?.get("api_key")
  return fromQuery === null || fromQuery === undefined || fromQuery === "" ? undefined : fromQuery
}

interface CachedKey {
  readonly key: ApiKeys.Resolved
  readonly at: number
}

export class Authenticator extends Effect.Service<Authenticator>()("@tessera/server/Authenticator", {
  effect: Effect.gen(function*() {
    const db = yield* Database
    const jwt = yield* Jwt
    const limiter = yield* RateLimiter
    const limitsCache = new Map<string, { readonly limits: PlanLimits; readonly at: number }>()

    /** Live keys this node has seen, by the hash of the plain key and by id. */
    const keyCache = new Map<string, CachedKey>()
    const keyCacheById = new Map<string, CachedKey>()
    const keyCacheTtlMs = Duration.toMillis(yield* Config.duration("API_KEY_CACHE_TTL").pipe(
      Config.withDefault(Duration.seconds(5)),
      Effect.orDie
    ))

    /** A cached key seen less than the TTL ago that has not expired since. */
    const fresh = (cached: CachedKey | undefined, now: number): ApiKeys.Resolved | undefined =>
      cached !== undefined && now - cached.at < keyCacheTtlMs && (cached.key.expiresAt === null || cached.key.expiresAt.getTime() > now)
        ? cached.key
        : undefined

    /** Caches a key found live at `now`, or forgets it when it was not found. */
    const remember = (key: ApiKeys.Resolved | undefined, now: number, hash?: string) => {
      if (key === undefined) {
        if (hash !== undefined) keyCache.delete(hash)
        return
      }
      const entry = { key, at: now }
      if (hash !== undefined) keyCache.set(hash, entry)
      keyCacheById.set(key.id, entry)
    }

    /** A live key, from this node's short cache while fresh, from Postgres otherwise. */
    const resolveKey = (credential: string) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const hash = ApiKeys.hash(credential)
        const cached = fresh(keyCache.get(hash), now)
        if (cached !== undefined) return cached
        const key = yield* ApiKeys.resolve(credential).pipe(Effect.provideService(Database, db))
        remember(key, now, hash)
        return key
      })

    /** Whether the tenant's key with this id is live, through the same cache. */
    const keyIsLive = (tenantId: TenantId, keyId: string) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        if (fresh(keyCacheById.get(keyId), now) !== undefined) return true
        const key = yield* ApiKeys.resolveId(tenantId, keyId).pipe(Effect.provideService(Database, db))
        if (key === undefined) keyCacheById.delete(keyId)
        else remember(key, now)
        return key !== undefined
      })

    /** Forgets a key this node may have cached (after a revocation or rotation here). */
    const forgetKey = (keyId: string) =>
      Effect.sync(() => {
        for (const [hash, entry] of keyCache) if (entry.key.id === keyId) keyCache.delete(hash)
        keyCacheById.delete(keyId)
      })

    const principalOf = (credential: string): Effect.Effect<Principal, Unauthorized | Unavailable> => {
      if (credential.startsWith("tsk_")) {
        return resolveKey(credential).pipe(
          Effect.mapError(unavailable),
          Effect.flatMap((key) => {
            if (key === undefined) return Effect.fail(unauthorized("invalid_api_key", "the API key is unknown, revoked or expired"))
            const scopes = key.scopes.filter((s): s is Scope => Schema.is(Scope)(s))
            return Effect.succeed(new Principal({
              tenantId: TenantId.make(key.tenantId),
              subject: `key:${key.id}`,
              keyId: key.id,
              scopes,
              credential: "api_key"
            }))
          })
        )
      }
      return jwt.verify(credential).pipe(
        Effect.tap((principal) =>
          principal.keyId === null ? Effect.void : Effect.flatMap(keyIsLive(principal.tenantId, principal.keyId), (live) =>
            live
              ? Effect.void
              : Effect.fail(unauthorized("credential_revoked", "the API key this access token was issued for is revoked or expired")))
        ),
        Effect.catchTags({
          InvalidToken: (e) => Effect.fail(unauthorized("invalid_token", e.message)),
          SqlError: (e) => Effect.fail(unavailable(e))
        })
      )
    }

    const limitsOf = (tenantId: TenantId): Effect.Effect<PlanLimits, Unauthorized | Unavailable> =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const cached = limitsCache.get(tenantId)
        if (cached !== undefined && now - cached.at < limitsTtlMs) return cached.limits
        const rows = yield* db.tenant(tenantId)(db.sql<{ limits: unknown }>`SELECT limits FROM tenants WHERE tenant_id = ${tenantId}`).pipe(
          Effect.mapError(unavailable)
        )
        if (rows[0] === undefined) return yield* unauthorized("tenant_not_found", "the credential's tenant does not exist")
        const limits = yield* Schema.decodeUnknown(PlanLimits)(rows[0].limits).pipe(Effect.mapError(unavailable))
        limitsCache.set(tenantId, { limits, at: now })
        return limits
      })

    const admit = (principal: Principal) =>
      Effect.gen(function*() {
        const { requestsPerMinute } = yield* limitsOf(principal.tenantId)
        const bucket = (key: string) => ({ key, capacity: requestsPerMinute, refillPerSecond: requestsPerMinute / 60 })
        const buckets = principal.keyId === null
          ? [bucket(`t:${principal.tenantId}:s:${principal.subject}`), bucket(`t:${principal.tenantId}`)]
          : [bucket(`t:${principal.tenantId}:k:${principal.keyId}`), bucket(`t:${principal.tenantId}`)]
        const decision = yield* limiter.check(buckets).pipe(
          Effect.mapError((e) => new Unavailable({ code: e.code, message: e.message }))
        )
        const state = { limit: decision.limit, remaining: decision.remaining, resetSeconds: decision.resetSeconds }
        if (!decision.allowed) {
          return yield* new TooManyRequests({
            code: "rate_limited",
            message: `tenant ${principal.tenantId} is over its rate limit of ${requestsPerMinute} requests per minute; retry in ${
              Math.ceil(decision.retryAfterMs / 1000)
            } s`,
            details: { limit: requestsPerMinute, window: "1 minute" },
            retry_after_ms: decision.retryAfterMs
          })
        }
        return state
      })

    /** The principal behind a credential, with a token taken from its rate buckets. */
    const authenticate = (credential: string | undefined): Effect.Effect<Principal, AuthError> =>
      Effect.gen(function*() {
        if (credential === undefined || credential === "") {
          return yield* unauthorized("missing_credentials", "send an API key (Authorization: Bearer or X-API-Key) or an access token")
        }
        const principal = yield* principalOf(credential)
        const state = yield* admit(principal)
        const context = yield* RequestContext.get
        if (Option.isSome(context)) context.value.rateLimit = state
        return principal
      })

    /** The current request's principal, authenticated once per request. */
    const authenticateRequest: Effect.Effect<Principal, AuthError | Forbidden, HttpServerRequest.HttpServerRequest> = Effect.gen(
      function*() {
        const context = yield* RequestContext.get
        const known = Option.isSome(context) ? context.value.principal : undefined
        const principal = known ?? (yield* authenticate(credentialOf((yield* HttpServerRequest.HttpServerRequest).headers)))
        if (Option.isSome(context)) context.value.principal = principal
        // Checked on every call: the API's security tries its schemes in turn, each calling this.
        yield* sameTenant(context, principal)
        return principal
      }
    )

    return { authenticate, authenticateRequest, principalOf, forgetKey } as const
  })
}) {}

/** The `Authentication` middleware of the API groups. */
export const layer: Layer.Layer<Authentication, never, Authenticator> = Layer.effect(
  Authentication,
  Effect.map(Authenticator, (auth) =>
    Authentication.of({
      bearer: () => auth.authenticateRequest,
      apiKey: () => auth.authenticateRequest
    }))
)
