/**
 * The admin contracts of the HTTP edge: API keys (create, list, revoke, rotate with an overlap
 * window), users and their roles, usage, the audit log and the tenant's workflow overlays. All of
 * them need the `admin` scope. An overlay can be checked without being stored (`validate`).
 */
import * as Schema from "effect/Schema"
import { ApiKey, Scope } from "./ApiKey.js"
import { UserId } from "./Ids.js"
import { PlanName } from "./Plan.js"

export class CreateApiKey extends Schema.Class<CreateApiKey>("CreateApiKey")({
  name: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(200)),
  scopes: Schema.Array(Scope).pipe(Schema.minItems(1)),
  /** Seconds until the key expires; never when absent. */
  expires_in: Schema.optional(Schema.Int.pipe(Schema.between(60, 10 * 365 * 86_400)))
}) {}

/** A key as created: the plain key is in this answer and nowhere else, ever. */
export class ApiKeyCreated extends Schema.Class<ApiKeyCreated>("ApiKeyCreated")({
  key: ApiKey,
  api_key: Schema.String
}) {}

export class RotateApiKey extends Schema.Class<RotateApiKey>("RotateApiKey")({
  /** How long the old key keeps working (default 24 h; 0 ends it now). */
  overlap_seconds: Schema.optionalWith(Schema.Int.pipe(Schema.between(0, 30 * 86_400)), { default: () => 86_400 })
}) {}

export const Role = Schema.Literal("owner", "admin", "agent", "viewer")
export type Role = typeof Role.Type

export class User extends Schema.Class<User>("User")({
  id: UserId,
  email: Schema.String,
  role: Role,
  scopes: Schema.Array(Scope),
  createdAt: Schema.DateTimeUtc
}) {}

export const Email = Schema.String.pipe(
  Schema.pattern(/^[^\s@]{1,64}@[^\s@]{1,255}$/, { message: () => "email must look like name@domain" })
)

export class CreateUser extends Schema.Class<CreateUser>("CreateUser")({
  id: UserId,
  email: Email,
  role: Role,
  /** When set, the user may exchange it for an access token (`POST /v1/auth/password`). */
  password: Schema.optional(Schema.String.pipe(Schema.minLength(12), Schema.maxLength(200)))
}) {}

export class SetRole extends Schema.Class<SetRole>("SetRole")({
  role: Role
}) {}

export class SetPlan extends Schema.Class<SetPlan>("SetPlan")({
  plan: PlanName
}) {}

export class UsageWindow extends Schema.Class<UsageWindow>("UsageWindow")({
  period: Schema.Literal("day", "month"),
  windowStart: Schema.String,
  requests: Schema.Number,
  tokens: Schema.Number,
  costUsd: Schema.Number,
  runs: Schema.Number
}) {}

export class AuditEntry extends Schema.Class<AuditEntry>("AuditEntry")({
  id: Schema.String,
  actor: Schema.String,
  action: Schema.String,
  resource: Schema.String,
  requestId: Schema.NullOr(Schema.String),
  details: Schema.Unknown,
  createdAt: Schema.DateTimeUtc
}) {}

/** A workflow the tenant can run: a shared one, or the tenant's overlay of it. */
export class WorkflowSummary extends Schema.Class<WorkflowSummary>("WorkflowSummary")({
  name: Schema.String,
  triggers: Schema.Array(Schema.String),
  overlay: Schema.Boolean
}) {}

/** A tenant overlay of a shared workflow, as YAML (`extends:` the shared one). */
export class UploadWorkflow extends Schema.Class<UploadWorkflow>("UploadWorkflow")({
  /** The name diagnostics cite (default `overlay.yaml`). */
  file: Schema.optionalWith(Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9_.-]{1,100}$/)), { default: () => "overlay.yaml" }),
  source: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(256_000))
}) {}

/** One problem of a checked workflow: where it is (1-based line and column), the field (e.g. `steps[2].next`) and what is wrong. */
export class WorkflowDiagnostic extends Schema.Class<WorkflowDiagnostic>("WorkflowDiagnostic")({
  line: Schema.Int,
  column: Schema.Int,
  field: Schema.String,
  message: Schema.String
}) {}

/** The answer of `POST /v1/admin/workflows/validate`: whether the overlay would be accepted, and why not. */
export class WorkflowValidation extends Schema.Class<WorkflowValidation>("WorkflowValidation")({
  valid: Schema.Boolean,
  diagnostics: Schema.Array(WorkflowDiagnostic)
}) {}
