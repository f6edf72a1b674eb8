import * as Schema from "effect/Schema"
import { TenantId } from "./Ids.js"
import { Plan } from "./Plan.js"

export class Tenant extends Schema.Class<Tenant>("Tenant")({
  id: TenantId,
  name: Schema.NonEmptyTrimmedString,
  plan: Plan,
  featureFlags: Schema.Record({ key: Schema.String, value: Schema.Boolean }),
  createdAt: Schema.DateTimeUtc
}) {}
