/**
 * The Tenant actor (entity id = tenant id). It serialises a tenant's quota decisions, so limits
 * are exact without a lock. Configuration changes are persisted messages (rare, durable,
 * redelivered after a crash); `Admit` and `RecordUsage` are volatile (the hot path).
 */
import { Entity } from "@effect/cluster"
import * as ClusterSchema from "@effect/cluster/ClusterSchema"
import { Rpc } from "@effect/rpc"
import * as Schema from "effect/Schema"
import { InvalidId, QuotaExceeded, StorageError, TenantAlreadyExists, TenantNotFound } from "./Errors.js"
import { PlanName } from "./Plan.js"
import { Tenant } from "./Tenant.js"

export class Admission extends Schema.Class<Admission>("Admission")({
  /** Requests left in the current minute window after this one. */
  remainingRequests: Schema.Int,
  /** Milliseconds until the request window resets. */
  resetMs: Schema.Int
}) {}

export const Provision = Rpc.make("Provision", {
  payload: { name: Schema.NonEmptyTrimmedString, plan: PlanName },
  success: Tenant,
  error: Schema.Union(TenantAlreadyExists, InvalidId, StorageError)
}).annotate(ClusterSchema.Persisted, true)

export const GetConfig = Rpc.make("GetConfig", {
  success: Tenant,
  error: Schema.Union(TenantNotFound, StorageError)
})

export const UpdatePlan = Rpc.make("UpdatePlan", {
  payload: { plan: PlanName },
  success: Tenant,
  error: Schema.Union(TenantNotFound, StorageError)
}).annotate(ClusterSchema.Persisted, true)

export const SetFeatureFlag = Rpc.make("SetFeatureFlag", {
  payload: { flag: Schema.String.pipe(Schema.pattern(/^[a-z][a-z0-9_]{0,63}$/)), enabled: Schema.Boolean },
  success: Tenant,
  error: Schema.Union(TenantNotFound, StorageError)
}).annotate(ClusterSchema.Persisted, true)

/**
 * Rate and quota check. `startsRun` also reserves one of the plan's concurrent runs; it is
 * released by `RecordUsage` with `runsFinished`.
 */
export const Admit = Rpc.make("Admit", {
  payload: Schema.Struct({
    estimatedTokens: Schema.optionalWith(Schema.NonNegativeInt, { default: () => 0 }),
    estimatedCostUsd: Schema.optionalWith(Schema.NonNegative, { default: () => 0 }),
    startsRun: Schema.optionalWith(Schema.Boolean, { default: () => false })
  }),
  success: Admission,
  error: Schema.Union(QuotaExceeded, TenantNotFound, StorageError)
})

/** Metered usage; written to `usage_counters` in batches (see TenantEntity in the runtime). */
export const RecordUsage = Rpc.make("RecordUsage", {
  payload: Schema.Struct({
    tokens: Schema.NonNegativeInt,
    costUsd: Schema.NonNegative,
    /** Runs that ended since the last report: their slots are given back. */
    runsFinished: Schema.optionalWith(Schema.NonNegativeInt, { default: () => 0 })
  }),
  error: Schema.Union(TenantNotFound, StorageError)
})

export const TenantEntity = Entity.make("Tenant", [
  Provision,
  GetConfig,
  UpdatePlan,
  SetFeatureFlag,
  Admit,
  RecordUsage
])
