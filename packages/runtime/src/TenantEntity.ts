/**
 * Behaviour of the Tenant actor. Configuration lives in `tenants`; usage is kept in memory for
 * exact, lock-free decisions and written to `usage_counters` in batches every
 * `TENANT_USAGE_FLUSH_INTERVAL` (default 1 s) and when the entity stops (passivation, shard
 * hand-off, clean shutdown). Loss bound: a runner killed with SIGKILL loses at most the usage
 * recorded in the last flush interval; runs in flight are recounted from `agent_runs` on
 * activation, so concurrency slots are never lost.
 */
import { Entity } from "@effect/cluster"
import type { Sharding } from "@effect/cluster/Sharding"
import * as SqlClient from "@effect/sql/SqlClient"
import { InvalidId, QuotaExceeded, TenantAlreadyExists, TenantNotFound } from "@tessera/domain/Errors"
import { TenantId } from "@tessera/domain/Ids"
import * as Plan from "@tessera/domain/Plan"
import type { Tenant } from "@tessera/domain/Tenant"
import { Admission, TenantEntity } from "@tessera/domain/TenantEntity"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import { Database } from "./Database.js"
import { type TenantRow, decodeTenant } from "./internal/rows.js"
import { storageError } from "./internal/storage.js"
import * as Quota from "./Quota.js"
import { activations } from "./EntityMetrics.js"

const admissions = Metric.counter("tessera_tenant_admissions_total", {
  description: "Tenant.Admit decisions by outcome"
})

interface Pending {
  requests: number
  tokens: number
  costUsd: number
  runs: number
}

const addPending = (pending: Map<string, Pending>, key: string, delta: Partial<Pending>) => {
  const entry = pending.get(key) ?? { requests: 0, tokens: 0, costUsd: 0, runs: 0 }
  entry.requests += delta.requests ?? 0
  entry.tokens += delta.tokens ?? 0
  entry.costUsd += delta.costUsd ?? 0
  entry.runs += delta.runs ?? 0
  pending.set(key, entry)
}

export const layer: Layer.Layer<never, never, Database | SqlClient.SqlClient | Sharding> = Layer.unwrapEffect(Effect.gen(function*() {
  const flushInterval = yield* Config.duration("TENANT_USAGE_FLUSH_INTERVAL").pipe(Config.withDefault(Duration.seconds(1)))
  return TenantEntity.toLayer(
    Effect.gen(function*() {
      const address = yield* Entity.CurrentAddress
      const tenantId = address.entityId
      const db = yield* Database
      const sql = yield* SqlClient.SqlClient
      yield* Metric.increment(activations("Tenant"))
      const inTenant = db.tenant(tenantId)

      const loadTenant = inTenant(sql<TenantRow>`SELECT * FROM tenants WHERE tenant_id = ${tenantId}`).pipe(
        Effect.flatMap((rows) => rows.length === 0 ? Effect.succeed(Option.none()) : Effect.asSome(decodeTenant(rows[0]!)))
      )

      let tenant: Option.Option<Tenant> = yield* loadTenant.pipe(Effect.orDie)
      const now = yield* Clock.currentTimeMillis
      const usage = yield* inTenant(Effect.all({
        day: sql<{ tokens: string }>`SELECT tokens FROM usage_counters
          WHERE tenant_id = ${tenantId} AND period = 'day' AND window_start = ${new Date(Quota.dayStartOf(now))}`,
        month: sql<{ cost_usd: string }>`SELECT cost_usd FROM usage_counters
          WHERE tenant_id = ${tenantId} AND period = 'month' AND window_start = ${new Date(Quota.monthStartOf(now))}`,
        inFlight: sql<{ n: string }>`SELECT count(*) AS n FROM agent_runs
          WHERE tenant_id = ${tenantId} AND status IN ('requested', 'started')`
      })).pipe(Effect.orDie)

      let quota: Quota.State | undefined = Option.isSome(tenant)
        ? Quota.make(tenant.value.plan.limits, now, {
          ...Quota.emptyUsage(now),
          tokensToday: Number(usage.day[0]?.tokens ?? 0),
          costThisMonth: Number(usage.month[0]?.cost_usd ?? 0)
        }, Number(usage.inFlight[0]?.n ?? 0))
        : undefined

      // Usage not yet written, by window: `day:<ms>` and `month:<ms>`.
      const pending = new Map<string, Pending>()
      const bump = (at: number, delta: Partial<Pending>) => {
        for (const key of [`day:${Quota.dayStartOf(at)}`, `month:${Quota.monthStartOf(at)}`]) addPending(pending, key, delta)
      }

      const flush = Effect.suspend(() => {
        if (pending.size === 0) return Effect.void
        const batch = [...pending.entries()]
        pending.clear()
        const rows = batch.map(([key, p]) => {
          const [period, start] = key.split(":")
          return {
            tenant_id: tenantId,
            period: period!,
            window_start: new Date(Number(start)),
            requests: p.requests,
            tokens: p.tokens,
            cost_usd: p.costUsd,
            runs: p.runs
          }
        })
        return inTenant(sql`
          INSERT INTO usage_counters ${sql.insert(rows)}
          ON CONFLICT (tenant_id, period, window_start) DO UPDATE SET
            requests = usage_counters.requests + excluded.requests,
            tokens = usage_counters.tokens + excluded.tokens,
            cost_usd = usage_counters.cost_usd + excluded.cost_usd,
            runs = usage_counters.runs + excluded.runs,
            updated_at = now()`).pipe(
          // Unless it was written (failure or interruption), the batch goes back for the next flush.
          Effect.onExit((exit) =>
            Exit.isSuccess(exit) ? Effect.void : Effect.sync(() => batch.forEach(([key, p]) => addPending(pending, key, p)))
          ),
          Effect.catchAllCause((cause) => Effect.logWarning("usage flush failed; retrying next interval", cause)),
          Effect.annotateLogs("tenant_id", tenantId)
        )
      })

      yield* flush.pipe(Effect.repeat(Schedule.spaced(flushInterval)), Effect.forkScoped)
      yield* Effect.addFinalizer(() => flush)

      const requireTenant = Effect.suspend(() =>
        Option.match(tenant, {
          onNone: () => Effect.fail(new TenantNotFound({ tenantId })),
          onSome: Effect.succeed
        })
      )

      const audit = (action: string, details: Record<string, unknown>) =>
        sql`INSERT INTO audit_logs ${
          sql.insert({
            tenant_id: tenantId,
            actor: "system",
            action,
            resource: `tenant/${tenantId}`,
            details: JSON.stringify(details)
          })
        }`

      const reload = Effect.flatMap(loadTenant, (loaded) =>
        Effect.sync(() => {
          tenant = loaded
          return loaded
        })
      ).pipe(Effect.flatMap(Option.match({
        onNone: () => Effect.fail(new TenantNotFound({ tenantId })),
        onSome: (t) => {
          if (quota === undefined) {
            return Effect.map(Clock.currentTimeMillis, (now) => {
              quota = Quota.make(t.plan.limits, now, Quota.emptyUsage(now), 0)
              return t
            })
          }
          return Effect.succeed(t)
        }
      })))

      const annotate = Effect.annotateLogs("tenant_id", tenantId)

      return TenantEntity.of({
        Provision: ({ payload }) =>
          Effect.gen(function*() {
            if (!Schema.is(TenantId)(tenantId)) return yield* new InvalidId({ kind: "tenant id", value: tenantId })
            if (Option.isSome(tenant)) {
              // A redelivered Provision (the cluster replays persisted messages) is answered, not refused.
              if (tenant.value.name === payload.name) return tenant.value
              return yield* new TenantAlreadyExists({ tenantId })
            }
            const plan = Plan.builtIn[payload.plan]
            yield* inTenant(Effect.zipRight(
              sql`INSERT INTO tenants ${
                sql.insert({
                  tenant_id: tenantId,
                  name: payload.name,
                  plan: plan.name,
                  limits: JSON.stringify(plan.limits),
                  features: JSON.stringify(plan.features)
                })
              } ON CONFLICT (tenant_id) DO NOTHING`,
              audit("tenant.provision", { name: payload.name, plan: plan.name })
            ))
            return yield* reload.pipe(Effect.catchTag("TenantNotFound", () => Effect.dieMessage("provisioned tenant vanished")))
          }).pipe(Effect.catchTag("SqlError", storageError("tenant.provision")), annotate),

        GetConfig: () => requireTenant,

        UpdatePlan: ({ payload }) =>
          Effect.gen(function*() {
            yield* requireTenant
            const plan = Plan.builtIn[payload.plan]
            yield* inTenant(Effect.zipRight(
              sql`UPDATE tenants SET plan = ${plan.name}, limits = ${JSON.stringify(plan.limits)},
                features = ${JSON.stringify(plan.features)}, updated_at = now() WHERE tenant_id = ${tenantId}`,
              audit("tenant.update_plan", { plan: plan.name })
            ))
            return yield* reload
          }).pipe(Effect.catchTag("SqlError", storageError("tenant.update_plan")), annotate),

        SetFeatureFlag: ({ payload }) =>
          Effect.gen(function*() {
            yield* requireTenant
            yield* inTenant(Effect.zipRight(
              sql`UPDATE tenants SET feature_flags = feature_flags || jsonb_build_object(${payload.flag}::text, ${payload.enabled}::boolean),
                updated_at = now() WHERE tenant_id = ${tenantId}`,
              audit("tenant.set_feature_flag", { flag: payload.flag, enabled: payload.enabled })
            ))
            return yield* reload
          }).pipe(Effect.catchTag("SqlError", storageError("tenant.set_feature_flag")), annotate),

        Admit: ({ payload }) =>
          Effect.gen(function*() {
            const current = yield* requireTenant
            const now = yield* Clock.currentTimeMillis
            const decision = Quota.admit(quota!, current.plan.limits, now, payload)
            if (decision._tag === "Denied") {
              yield* Metric.increment(Metric.tagged(Metric.tagged(admissions, "tenant_id", tenantId), "outcome", "denied"))
              return yield* new QuotaExceeded({
                tenantId,
                quota: decision.quota,
                limit: decision.limit,
                retryAfterMs: decision.retryAfterMs
              })
            }
            quota = decision.state
            bump(now, { requests: 1, runs: payload.startsRun ? 1 : 0 })
            yield* Metric.increment(Metric.tagged(Metric.tagged(admissions, "tenant_id", tenantId), "outcome", "admitted"))
            return new Admission({ remainingRequests: decision.remaining, resetMs: decision.resetMs })
          }),

        RecordUsage: ({ payload }) =>
          Effect.gen(function*() {
            yield* requireTenant
            const now = yield* Clock.currentTimeMillis
            quota = Quota.record(quota!, now, payload)
            bump(now, { tokens: payload.tokens, costUsd: payload.costUsd })
          })
      })
    }),
    { maxIdleTime: "10 minutes" }
  )
}).pipe(Effect.orDie))
