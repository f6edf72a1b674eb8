/**
 * Errors a caller can see. Each carries a stable `code` that the HTTP edge returns unchanged.
 */
import * as Schema from "effect/Schema"

/** An entity id that is not a valid id of its kind (ids are 1-64 characters of A-Z, a-z, 0-9, '_', '-'). */
export class InvalidId extends Schema.TaggedError<InvalidId>()("InvalidId", {
  kind: Schema.String,
  value: Schema.String
}) {
  readonly code = "invalid_id"
  override get message() {
    return `${JSON.stringify(this.value)} is not a valid ${this.kind}: use 1-64 characters of A-Z, a-z, 0-9, '_' or '-'`
  }
}

export class TenantNotFound extends Schema.TaggedError<TenantNotFound>()("TenantNotFound", {
  tenantId: Schema.String
}) {
  readonly code = "tenant_not_found"
  override get message() {
    return `tenant ${this.tenantId} does not exist`
  }
}

export class TenantAlreadyExists extends Schema.TaggedError<TenantAlreadyExists>()("TenantAlreadyExists", {
  tenantId: Schema.String
}) {
  readonly code = "tenant_exists"
  override get message() {
    return `tenant ${this.tenantId} already exists`
  }
}

export class SessionNotFound extends Schema.TaggedError<SessionNotFound>()("SessionNotFound", {
  sessionId: Schema.String
}) {
  readonly code = "session_not_found"
  override get message() {
    return `session ${this.sessionId} does not exist`
  }
}

export class SessionClosed extends Schema.TaggedError<SessionClosed>()("SessionClosed", {
  sessionId: Schema.String
}) {
  readonly code = "session_closed"
  override get message() {
    return `session ${this.sessionId} is closed`
  }
}

export class RunNotFound extends Schema.TaggedError<RunNotFound>()("RunNotFound", {
  runId: Schema.String
}) {
  readonly code = "run_not_found"
  override get message() {
    return `run ${this.runId} does not exist`
  }
}

export const QuotaKind = Schema.Literal("requests_per_minute", "tokens_per_day", "cost_per_month", "concurrent_runs")
export type QuotaKind = typeof QuotaKind.Type

/** Admission refused: which limit, and when to try again. */
export class QuotaExceeded extends Schema.TaggedError<QuotaExceeded>()("QuotaExceeded", {
  tenantId: Schema.String,
  quota: QuotaKind,
  limit: Schema.Number,
  retryAfterMs: Schema.Int
}) {
  readonly code = "quota_exceeded"
  override get message() {
    return `tenant ${this.tenantId} is over its ${this.quota} limit (${this.limit}); retry in ${this.retryAfterMs} ms`
  }
}

/** Postgres or the broker failed; the operation did not take effect. */
export class StorageError extends Schema.TaggedError<StorageError>()("StorageError", {
  operation: Schema.String,
  reason: Schema.String
}) {
  readonly code = "storage_unavailable"
  override get message() {
    return `${this.operation} failed: ${this.reason}`
  }
}
