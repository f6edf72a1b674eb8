/**
 * The platform operator's API (`/v1/operator/*`, see `@tessera/domain/Operator`): creating a tenant
 * (through the Tenant entity's `Provision`, with its first `owner` API key, audit-logged in the new
 * tenant as `tenant.create` by `operator`) and listing tenants a page at a time.
 *
 * The operator authenticates with `TESSERA_OPERATOR_TOKEN` (`Authorization: Bearer …`, compared in
 * constant time). Without a configured token the operator API is absent: 404 `route_not_found`,
 * the answer to a route that does not exist. `tessera dev` generates one (see Demo).
 *
 * Tenant ids are unique: creating an id that exists is 409 `tenant_exists`. Creations of one id
 * take turns under a Postgres advisory lock, so of two concurrent requests exactly one creates.
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as ApiErrors from "@tessera/domain/ApiErrors"
import { TesseraApi } from "@tessera/domain/Api"
import { TenantId } from "@tessera/domain/Ids"
import { OperatorAuthentication, TenantCreated, TenantPage } from "@tessera/domain/Operator"
import * as ApiKeys from "@tessera/runtime/ApiKeys"
import { Database } from "@tessera/runtime/Database"
import { decodeTenant, type TenantRow } from "@tessera/runtime/internal/rows"
import { TesseraClient } from "@tessera/runtime/TesseraClient"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { createHash, randomBytes, timingSafeEqual } from "node:crypto"
import * as Audit from "./Audit.js"
import * as Rbac from "./Rbac.js"

/** The operator token of this node; none when the operator API is off. */
export class OperatorToken extends Context.Tag("@tessera/server/OperatorToken")<
  OperatorToken,
  Option.Option<Redacted.Redacted<string>>
>() {}

/** `TESSERA_OPERATOR_TOKEN`, optional. */
export const tokenConfig: Config.Config<Option.Option<Redacted.Redacted<string>>> = Config.option(
  Config.redacted("TESSERA_OPERATOR_TOKEN").pipe(Config.mapOrFail((token) =>
    Redacted.value(token).length >= 32
      ? Either.right(token)
      : Either.left(ConfigError.InvalidData(["TESSERA_OPERATOR_TOKEN"], "is shorter than 32 characters"))
  ))
)

export const layerConfig: Layer.Layer<OperatorToken, ConfigError.ConfigError> = Layer.effect(OperatorToken, tokenConfig)

/** A fresh operator token (`top_` and 32 random bytes). */
export const generate = (): string => `top_${randomBytes(32).toString("base64url")}`

const digest = (value: string) => createHash("sha256").update(value).digest()

/** The `OperatorAuthentication` middleware of the operator group. */
export const authentication: Layer.Layer<OperatorAuthentication, never, OperatorToken> = Layer.effect(
  OperatorAuthentication,
  Effect.map(OperatorToken, (configured) => {
    const expected = Option.map(configured, (token) => digest(Redacted.value(token)))
    return OperatorAuthentication.of({
      operatorToken: (presented) => {
        if (Option.isNone(expected)) {
          return Effect.fail(new ApiErrors.NotFound({ code: "route_not_found", message: "no such route" }))
        }
        return timingSafeEqual(digest(Redacted.value(presented)), expected.value)
          ? Effect.void
          : Effect.fail(new ApiErrors.Unauthorized({ code: "invalid_operator_token", message: "send the operator token as Authorization: Bearer" }))
      }
    })
  })
)

const unavailable = (error: { readonly message: string }) =>
  new ApiErrors.Unavailable({ code: "storage_unavailable", message: error.message })

const tenantExists = (id: TenantId) =>
  new ApiErrors.Conflict({ code: "tenant_exists", message: `tenant ${id} already exists`, details: { field: "id" } })

/** The operator group's handlers. */
export const handlers = HttpApiBuilder.group(TesseraApi, "operator", (handlers) =>
  Effect.gen(function*() {
    const db = yield* Database
    const sql = db.sql
    const tessera = yield* TesseraClient

    /**
     * Runs `effect` holding a Postgres session advisory lock on `key`, taken on a connection of its
     * own (the effect's statements and messages use the pool as usual), across nodes; `busy` when
     * another holds it. Nobody waits for the lock holding a connection, so concurrent requests
     * cannot drain the pool.
     */
    const exclusive = <A, E, R, B>(key: string, effect: Effect.Effect<A, E, R>, busy: () => B) =>
      Effect.scoped(Effect.gen(function*() {
        const connection = yield* sql.reserve
        const locked = yield* Effect.acquireRelease(
          connection.execute("SELECT pg_try_advisory_lock(hashtext($1)) AS locked", [key], undefined),
          (rows) =>
            rows[0]?.locked === true
              ? Effect.ignore(connection.execute("SELECT pg_advisory_unlock(hashtext($1))", [key], undefined))
              : Effect.void
        )
        if (locked[0]?.locked !== true) return yield* Effect.fail(busy())
        return yield* effect
      }))

    return handlers
      .handle("createTenant", ({ payload }) => {
        const id = payload.id ?? TenantId.make(`t_${randomBytes(8).toString("hex")}`)
        return Effect.gen(function*() {
          const tenant = yield* exclusive(`tessera.operator.tenant:${id}`, Effect.gen(function*() {
            const existing = yield* db.system(sql`SELECT 1 FROM tenants WHERE tenant_id = ${id}`)
            if (existing.length > 0) return yield* tenantExists(id)
            return yield* tessera.tenant(id).Provision({ name: payload.name, plan: payload.plan }).pipe(
              Effect.mapError((e) =>
                e._tag === "TenantAlreadyExists"
                  ? tenantExists(id)
                  : e._tag === "InvalidId"
                  ? new ApiErrors.BadRequest({ code: "invalid_id", message: e.message, details: { field: "id" } })
                  : new ApiErrors.Unavailable({ code: "tenant_unavailable", message: `the tenant could not be provisioned: ${e.message}` })
              )
            )
          }), () => tenantExists(id)).pipe(Effect.catchTag("SqlError", (e) => Effect.fail(unavailable(e))))
          const created = yield* ApiKeys.create(id, "owner", Rbac.scopesOf.owner).pipe(Effect.mapError(unavailable))
          const key = (yield* ApiKeys.list(id).pipe(Effect.mapError(unavailable))).find((k) => k.id === created.id)
          if (key === undefined) return yield* new ApiErrors.Internal({ code: "internal_error", message: "the owner key vanished" })
          yield* Audit.record({ tenantId: id, subject: "operator" }, "tenant.create", `tenant/${id}`, {
            name: payload.name,
            plan: payload.plan,
            owner_key: created.id
          })
          return new TenantCreated({ tenant, key, api_key: Redacted.value(created.plainKey) })
        }).pipe(Effect.provideService(Database, db), Effect.annotateLogs({ tenant_id: id, operator: "tenant.create" }))
      })
      .handle("listTenants", ({ urlParams }) =>
        Effect.gen(function*() {
          const after = urlParams.after === undefined ? sql`` : sql`WHERE tenant_id > ${urlParams.after}`
          const rows = yield* db.system(
            sql<TenantRow>`SELECT * FROM tenants ${after} ORDER BY tenant_id LIMIT ${urlParams.limit + 1}`
          ).pipe(Effect.mapError(unavailable))
          const page = rows.slice(0, urlParams.limit)
          const tenants = yield* Effect.forEach(page, decodeTenant).pipe(Effect.mapError(unavailable))
          const last = tenants.at(-1)
          return new TenantPage({ tenants, next: rows.length > urlParams.limit && last !== undefined ? last.id : null })
        }))
  }))
