import * as Schema from "effect/Schema"
import { RunId, SessionId, TenantId, UserId } from "./Ids.js"

/**
 * requested → started → completed | failed | cancelled | compensated.
 * A requested run may also be cancelled before it starts; failed runs may be compensated.
 */
export const RunStatus = Schema.Literal("requested", "started", "completed", "failed", "cancelled", "compensated")
export type RunStatus = typeof RunStatus.Type

const transitions: Record<RunStatus, ReadonlyArray<RunStatus>> = {
  requested: ["started", "cancelled", "failed"],
  started: ["completed", "failed", "cancelled", "compensated"],
  completed: [],
  failed: ["compensated"],
  cancelled: [],
  compensated: []
}

export const canTransition = (from: RunStatus, to: RunStatus): boolean => transitions[from].includes(to)

/** The statuses from which a run still has work to do: the recovery scan wakes these. */
export const unfinished: ReadonlyArray<RunStatus> = ["requested", "started"]

export const StepStatus = Schema.Literal("completed", "failed")
export type StepStatus = typeof StepStatus.Type

/** One journaled step: written once, in the same transaction as its outbox events. */
export class RunStep extends Schema.Class<RunStep>("RunStep")({
  stepId: Schema.String,
  seq: Schema.Int,
  kind: Schema.String,
  status: StepStatus,
  output: Schema.Unknown,
  startedAt: Schema.DateTimeUtc,
  finishedAt: Schema.DateTimeUtc
}) {}

export class Run extends Schema.Class<Run>("Run")({
  id: RunId,
  tenantId: TenantId,
  sessionId: Schema.NullOr(SessionId),
  userId: Schema.NullOr(UserId),
  workflow: Schema.String,
  status: RunStatus,
  input: Schema.Unknown,
  output: Schema.Unknown,
  error: Schema.NullOr(Schema.String),
  attempts: Schema.Int,
  createdAt: Schema.DateTimeUtc,
  updatedAt: Schema.DateTimeUtc,
  steps: Schema.Array(RunStep)
}) {}
