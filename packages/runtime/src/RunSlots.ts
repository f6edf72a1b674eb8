/**
 * Gives the run slots of finished runs back to their tenants (`Tenant.RecordUsage` with
 * `runsFinished`), for every run host of this runner together. Per tenant at most one message is
 * in flight; runs finishing meanwhile are counted into the next one. Under load a tenant gets one
 * message per round trip, whatever the number of its runs and of the hosts (tenant partitions)
 * they ran on — one message per finished run cost more CPU than the run's own journal writes.
 *
 * A message that fails is logged and its count dropped, as the tenant recounts its unfinished
 * runs from the journal when it activates.
 */
import type { Sharding } from "@effect/cluster/Sharding"
import type { TenantId } from "@tessera/domain/Ids"
import { TenantEntity } from "@tessera/domain/TenantEntity"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"

export class RunSlots extends Effect.Service<RunSlots>()("@tessera/runtime/RunSlots", {
  scoped: Effect.gen(function*() {
    const tenants = yield* TenantEntity.client
    const scope = yield* Effect.scope
    /** Finished runs per tenant not yet given back. */
    const pending = new Map<string, number>()
    /** Tenants with a RecordUsage in flight. */
    const sending = new Set<string>()

    const send = (tenantId: string): Effect.Effect<void> =>
      Effect.suspend(() => {
        const runsFinished = pending.get(tenantId) ?? 0
        if (runsFinished === 0) {
          sending.delete(tenantId)
          return Effect.void
        }
        pending.delete(tenantId)
        return tenants(tenantId).RecordUsage({ tokens: 0, costUsd: 0, runsFinished }).pipe(
          Effect.catchAllCause((cause) =>
            Effect.logWarning("could not give the tenant's run slots back", cause).pipe(Effect.annotateLogs({ tenant_id: tenantId }))
          ),
          Effect.zipRight(send(tenantId))
        )
      })

    /** One run of the tenant has finished: its slot goes back with the tenant's next message. */
    const release = (tenantId: TenantId): Effect.Effect<void> =>
      Effect.suspend(() => {
        pending.set(tenantId, (pending.get(tenantId) ?? 0) + 1)
        if (sending.has(tenantId)) return Effect.void
        sending.add(tenantId)
        return Effect.asVoid(Effect.forkIn(send(tenantId), scope))
      })

    return { release } as const
  })
}) {}

export const layer: Layer.Layer<RunSlots, never, Sharding> = RunSlots.Default
