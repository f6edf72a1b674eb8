/**
 * What the edge learns about one HTTP request as it goes through the layers: its id (echoed as
 * `X-Request-Id` and in every error body), its caller once authenticated, and the rate-limit
 * state to report in `RateLimit-*` headers, and the tenant its body names. The outermost middleware installs a fresh one per
 * request; inner layers fill it in.
 */
import type { Principal } from "@tessera/domain/Principal"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as Option from "effect/Option"

export interface RateLimitState {
  readonly limit: number
  readonly remaining: number
  readonly resetSeconds: number
}

export interface RequestContext {
  readonly requestId: string
  /** The authenticated caller (set once, by the first authentication of the request). */
  principal: Principal | undefined
  rateLimit: RateLimitState | undefined
  /** A tenant the JSON body names at its top level (`tenant_id` or `tenantId`), if any. */
  bodyTenant: { readonly field: string; readonly value: unknown } | undefined
}

export const current: FiberRef.FiberRef<Option.Option<RequestContext>> = FiberRef.unsafeMake(Option.none<RequestContext>())

export const get: Effect.Effect<Option.Option<RequestContext>> = FiberRef.get(current)

/** The request id, or "" outside a request. */
export const requestId: Effect.Effect<string> = Effect.map(get, Option.match({
  onNone: () => "",
  onSome: (context) => context.requestId
}))

export const make = (requestId: string): RequestContext => ({
  requestId,
  principal: undefined,
  rateLimit: undefined,
  bodyTenant: undefined
})
