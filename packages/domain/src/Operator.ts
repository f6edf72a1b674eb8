/**
 * The operator API of the platform (`/v1/operator/*`): creating tenants and listing them. It is
 * not a tenant's API: the caller is the platform operator, authenticated with the operator token
 * (`Authorization: Bearer <TESSERA_OPERATOR_TOKEN>`). Where no operator token is configured the
 * routes answer 404 `route_not_found`, exactly as a route that does not exist; a missing or wrong
 * token is 401 `invalid_operator_token`.
 */
import * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import * as HttpApiSecurity from "@effect/platform/HttpApiSecurity"
import * as Schema from "effect/Schema"
import { ApiKey } from "./ApiKey.js"
import { NotFound, Unauthorized } from "./ApiErrors.js"
import { TenantId } from "./Ids.js"
import { PlanName } from "./Plan.js"
import { Tenant } from "./Tenant.js"

export class OperatorAuthentication extends HttpApiMiddleware.Tag<OperatorAuthentication>()(
  "@tessera/domain/OperatorAuthentication",
  {
    failure: Schema.Union(Unauthorized, NotFound),
    security: { operatorToken: HttpApiSecurity.bearer }
  }
) {}

export class CreateTenant extends Schema.Class<CreateTenant>("CreateTenant")({
  /** The tenant id; a fresh `t_…` id when absent. Unique: an id that exists is 409 `tenant_exists`. */
  id: Schema.optional(TenantId),
  name: Schema.Trim.pipe(Schema.minLength(1), Schema.maxLength(200)),
  plan: PlanName
}) {}

/** A created tenant and its first API key (`owner`: read, write and admin); the plain key is in this answer only. */
export class TenantCreated extends Schema.Class<TenantCreated>("TenantCreated")({
  tenant: Tenant,
  key: ApiKey,
  api_key: Schema.String
}) {}

/** One page of tenants in id order; `next` is the `after` of the following page, null on the last. */
export class TenantPage extends Schema.Class<TenantPage>("TenantPage")({
  tenants: Schema.Array(Tenant),
  next: Schema.NullOr(TenantId)
}) {}
