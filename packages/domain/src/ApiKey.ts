import * as Schema from "effect/Schema"
import { ApiKeyId, TenantId } from "./Ids.js"

export const Scope = Schema.Literal("read", "write", "admin")
export type Scope = typeof Scope.Type

/** An API key as stored and listed: the plain key is shown once at creation and never kept. */
export class ApiKey extends Schema.Class<ApiKey>("ApiKey")({
  id: ApiKeyId,
  tenantId: TenantId,
  name: Schema.String,
  prefix: Schema.String,
  scopes: Schema.Array(Scope),
  createdAt: Schema.DateTimeUtc,
  expiresAt: Schema.NullOr(Schema.DateTimeUtc),
  revokedAt: Schema.NullOr(Schema.DateTimeUtc)
}) {}
