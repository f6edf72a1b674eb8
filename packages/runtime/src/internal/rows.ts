/** Row → domain decoding for the tables several entities read. */
import type { RunStatus } from "@tessera/domain/Run"
import { Run } from "@tessera/domain/Run"
import { Tenant } from "@tessera/domain/Tenant"
import { StorageError } from "@tessera/domain/Errors"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"

export interface TenantRow {
  readonly tenant_id: string
  readonly name: string
  readonly plan: string
  readonly limits: unknown
  readonly features: unknown
  readonly feature_flags: unknown
  readonly created_at: Date
}

const corrupt = (what: string) => (error: unknown) =>
  new StorageError({ operation: `decode ${what}`, reason: String(error) })

export const decodeTenant = (row: TenantRow): Effect.Effect<Tenant, StorageError> =>
  Schema.decodeUnknown(Tenant)({
    id: row.tenant_id,
    name: row.name,
    plan: { name: row.plan, limits: row.limits, features: row.features },
    featureFlags: row.feature_flags,
    createdAt: row.created_at.toISOString()
  }).pipe(Effect.mapError(corrupt("tenant")))

export interface RunRow {
  readonly tenant_id: string
  readonly id: string
  readonly session_id: string | null
  readonly user_id: string | null
  readonly workflow: string
  readonly status: RunStatus
  readonly input: unknown
  readonly output: unknown
  readonly error: string | null
  readonly attempts: number
  readonly created_at: Date
  readonly updated_at: Date
}

export interface StepRow {
  readonly step_id: string
  readonly seq: number
  readonly kind: string
  readonly status: string
  readonly output: unknown
  readonly started_at: Date
  readonly finished_at: Date
  /** The step the run went on to (null: the run ended, or stopped, here). */
  readonly next_step: string | null
  /** How the step ended: ok, or what its on_error made of a failure (continue, fallback, escalate, failed). */
  readonly outcome: string | null
  readonly error: string | null
  readonly tier: string | null
  readonly tokens: number
  readonly cost_usd: number
}

export const decodeRun = (row: RunRow, steps: ReadonlyArray<StepRow>): Effect.Effect<Run, StorageError> =>
  Schema.decodeUnknown(Run)({
    id: row.id,
    tenantId: row.tenant_id,
    sessionId: row.session_id,
    userId: row.user_id,
    workflow: row.workflow,
    status: row.status,
    input: row.input,
    output: row.output,
    error: row.error,
    attempts: row.attempts,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
    steps: steps.map((step) => ({
      stepId: step.step_id,
      seq: step.seq,
      kind: step.kind,
      status: step.status,
      output: step.output,
      startedAt: step.started_at.toISOString(),
      finishedAt: step.finished_at.toISOString()
    }))
  }).pipe(Effect.mapError(corrupt("run")))
