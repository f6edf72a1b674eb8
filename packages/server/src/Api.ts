/**
 * The implementation of the HTTP API (`@tessera/domain/Api`) and the HTTP server of a node: the
 * API groups, `/openapi.json`, Swagger UI at `/docs`, `/metrics`, `/healthz`, `/readyz` and the
 * WebSocket gateway at `/v1/realtime`, all behind the edge middleware (HttpEdge).
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApiSwagger from "@effect/platform/HttpApiSwagger"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type { Sharding } from "@effect/cluster/Sharding"
import type { ConfigError } from "effect/ConfigError"
import {
  ApiKeyCreated,
  AuditEntry,
  type Role,
  UsageWindow,
  User,
  WorkflowDiagnostic,
  WorkflowSummary,
  WorkflowValidation
} from "@tessera/domain/Admin"
import * as ApiErrors from "@tessera/domain/ApiErrors"
import { TesseraApi } from "@tessera/domain/Api"
import { Jwks, TokenResponse } from "@tessera/domain/AuthToken"
import * as Plan from "@tessera/domain/Plan"
import { type RunId, SessionId } from "@tessera/domain/Ids"
import { CurrentPrincipal, Principal } from "@tessera/domain/Principal"
import { unfinished } from "@tessera/domain/Run"
import * as ApiKeys from "@tessera/runtime/ApiKeys"
import * as RunFeedback from "@tessera/runtime/RunFeedback"
import { Database } from "@tessera/runtime/Database"
import type { EventBus } from "@tessera/runtime/EventBus"
import { KnowledgeStore } from "@tessera/runtime/KnowledgeStore"
import { TesseraClient } from "@tessera/runtime/TesseraClient"
import { WorkflowRegistry } from "@tessera/runtime/WorkflowRegistry"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { createHash, randomUUID } from "node:crypto"
import { createServer } from "node:http"
import * as Audit from "./Audit.js"
import * as Auth from "./Auth.js"
import { Chat } from "./Chat.js"
import { Idempotency } from "./Idempotency.js"
import * as RateLimiter from "./RateLimiter.js"
import * as DomainErrors from "./DomainErrors.js"
import * as Health from "./Health.js"
import * as HttpEdge from "./HttpEdge.js"
import { Jwt } from "./Jwt.js"
import * as Metrics from "./Metrics.js"
import * as Operator from "./Operator.js"
import * as Passwords from "./Passwords.js"
import * as Rbac from "./Rbac.js"
import * as Realtime from "./Realtime.js"
import { RealtimeHub } from "./RealtimeHub.js"
import { RunWaiter } from "./RunWaiter.js"
import { redact } from "./Pii.js"

interface Tagged {
  readonly _tag: string
  readonly message?: string
}

/** Domain failures as API errors (API errors pass through). */
const apiErrors = <A, E extends Tagged, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, ApiErrors.ApiError, R> =>
  Effect.mapError(effect, DomainErrors.toApiError)

const sqlUnavailable = (error: { readonly message: string }) =>
  new ApiErrors.Unavailable({ code: "storage_unavailable", message: error.message })

const AuthLive = HttpApiBuilder.group(TesseraApi, "auth", (handlers) =>
  Effect.gen(function*() {
    const auth = yield* Auth.Authenticator
    const jwt = yield* Jwt
    const limiter = yield* RateLimiter.RateLimiter
    const db = yield* Database
    return handlers
      .handle("token", () =>
        Effect.gen(function*() {
          const principal = yield* auth.authenticateRequest
          if (principal.credential !== "api_key") {
            return yield* new ApiErrors.Unauthorized({
              code: "api_key_required",
              message: "an access token is exchanged for an API key, not for another token"
            })
          }
          const { expiresIn, token } = yield* jwt.sign(principal).pipe(Effect.mapError(sqlUnavailable))
          return new TokenResponse({ access_token: token, token_type: "Bearer", expires_in: expiresIn, scope: principal.scopes.join(" ") })
        }))
      .handle("password", ({ payload }) =>
        Effect.gen(function*() {
          const refused = new ApiErrors.Unauthorized({ code: "invalid_credentials", message: "the e-mail or the password is wrong" })
          const email = payload.email.toLowerCase()
          // Guessing is rate limited per tenant and e-mail: 10 attempts, one more every 6 seconds.
          const attempt = yield* limiter.check([{
            key: `t:${payload.tenant_id}:login:${createHash("sha256").update(email).digest("hex")}`,
            capacity: 10,
            refillPerSecond: 1 / 6
          }]).pipe(Effect.mapError((e) => new ApiErrors.Unavailable({ code: e.code, message: e.message })))
          if (!attempt.allowed) {
            return yield* new ApiErrors.TooManyRequests({
              code: "rate_limited",
              message: "too many sign-in attempts for this e-mail; retry later",
              retry_after_ms: attempt.retryAfterMs
            })
          }
          const rows = yield* db.tenant(payload.tenant_id)(db.sql<{ id: string; role: Role; password_hash: string | null }>`
            SELECT id, role, password_hash FROM users WHERE tenant_id = ${payload.tenant_id} AND lower(email) = ${email}`).pipe(
              Effect.mapError(sqlUnavailable)
            )
          const user = rows[0]
          if (!(yield* Passwords.verify(payload.password, user?.password_hash ?? null)) || user === undefined) return yield* refused
          const principal = new Principal({
            tenantId: payload.tenant_id,
            subject: `user:${user.id}`,
            keyId: null,
            scopes: Rbac.scopesOf[user.role],
            credential: "jwt"
          })
          const { expiresIn, token } = yield* jwt.sign(principal).pipe(Effect.mapError(sqlUnavailable))
          return new TokenResponse({ access_token: token, token_type: "Bearer", expires_in: expiresIn, scope: principal.scopes.join(" ") })
        }))
      .handle("jwks", () => Effect.map(jwt.jwks, (keys) => new Jwks({ keys })).pipe(Effect.orDie))
  }))

const MeLive = HttpApiBuilder.group(TesseraApi, "me", (handlers) => handlers.handle("whoami", () => CurrentPrincipal))

const ChatLive = HttpApiBuilder.group(TesseraApi, "chat", (handlers) =>
  Effect.gen(function*() {
    const chat = yield* Chat
    return handlers.handle("send", ({ payload }) =>
      Effect.flatMap(Rbac.requireScope("write"), (principal) => chat.send(principal, payload)))
  }))

const SessionsLive = HttpApiBuilder.group(TesseraApi, "sessions", (handlers) =>
  Effect.gen(function*() {
    const tessera = yield* TesseraClient
    return handlers
      .handle("create", ({ payload }) =>
        Effect.gen(function*() {
          const principal = yield* Rbac.requireScope("write")
          const id = payload.session_id ?? SessionId.make(`s_${randomUUID()}`)
          return yield* tessera.session(principal.tenantId, id).Open({ userId: payload.user_id, channel: payload.channel })
        }).pipe(apiErrors))
      .handle("messages", ({ path, urlParams }) =>
        Effect.gen(function*() {
          const principal = yield* Rbac.requireScope("read")
          return yield* tessera.session(principal.tenantId, path.id).History({
            limit: urlParams.limit,
            ...(urlParams.before === undefined ? {} : { before: urlParams.before })
          })
        }).pipe(apiErrors))
      .handle("close", ({ path }) =>
        Effect.gen(function*() {
          const principal = yield* Rbac.requireScope("write")
          yield* tessera.session(principal.tenantId, path.id).Close()
        }).pipe(apiErrors))
  }))

/** Server-Sent Events of a run: each step once, then `final` with the run, then the stream ends. */
const runEvents = (tessera: TesseraClient, principal: Principal, runId: RunId) =>
  Effect.gen(function*() {
    const status = tessera.run(principal.tenantId, runId).Status()
    const first = yield* status
    const encoder = new TextEncoder()
    const frame = (event: string, id: string, data: unknown) =>
      encoder.encode(`event: ${event}\nid: ${id}\ndata: ${JSON.stringify(data)}\n\n`)
    const seen = new Set<string>()
    const events = Stream.paginateChunkEffect(first, (run) =>
      Effect.gen(function*() {
        const fresh = run.steps.filter((step) => !seen.has(step.stepId))
        fresh.forEach((step) => seen.add(step.stepId))
        const out = fresh.map((step) =>
          frame("step", `${run.id}:${step.seq}`, { run_id: run.id, step: step.stepId, kind: step.kind, status: step.status })
        )
        if (!unfinished.includes(run.status)) {
          out.push(frame("final", `${run.id}:final`, { run_id: run.id, status: run.status, output: run.output, error: run.error }))
          return [Chunk.fromIterable(out), Option.none()] as const
        }
        yield* Effect.sleep(Duration.millis(200))
        return [Chunk.fromIterable(out), Option.some(yield* status)] as const
      }).pipe(Effect.orDie)
    )
    return HttpServerResponse.stream(events, {
      contentType: "text/event-stream",
      headers: { "cache-control": "no-cache", "x-accel-buffering": "no" }
    })
  })

const RunsLive = HttpApiBuilder.group(TesseraApi, "runs", (handlers) =>
  Effect.gen(function*() {
    const tessera = yield* TesseraClient
    const db = yield* Database
    return handlers
      .handle("get", ({ path }) =>
        Effect.flatMap(Rbac.requireScope("read"), (principal) => tessera.run(principal.tenantId, path.id).Status()).pipe(apiErrors))
      .handle("cancel", ({ path, payload }) =>
        Effect.flatMap(
          Rbac.requireScope("write"),
          (principal) => tessera.run(principal.tenantId, path.id).Cancel(payload.reason)
        ).pipe(apiErrors))
      .handle("events", ({ path }) =>
        Effect.flatMap(Rbac.requireScope("read"), (principal) => runEvents(tessera, principal, path.id)).pipe(apiErrors))
      .handle("feedback", ({ path, payload }) =>
        Effect.flatMap(Rbac.requireScope("write"), (principal) => RunFeedback.save(principal.tenantId, path.id, payload)).pipe(
          Effect.provideService(Database, db),
          apiErrors
        ))
  }))

const KnowledgeLive = HttpApiBuilder.group(TesseraApi, "knowledge", (handlers) =>
  Effect.gen(function*() {
    const store = yield* KnowledgeStore
    return handlers
      .handle("add", ({ payload }) =>
        Effect.flatMap(Rbac.requireScope("write"), (principal) => store.add(principal.tenantId, payload)).pipe(
          Effect.map((result) => result.document),
          apiErrors
        ))
      .handle("list", ({ urlParams }) =>
        Effect.flatMap(Rbac.requireScope("read"), (principal) =>
          store.list(principal.tenantId, {
            limit: urlParams.limit,
            offset: urlParams.offset,
            ...(urlParams.tag === undefined ? {} : { tag: urlParams.tag })
          })).pipe(apiErrors))
      .handle("get", ({ path }) =>
        Effect.flatMap(Rbac.requireScope("read"), (principal) => store.get(principal.tenantId, path.id)).pipe(apiErrors))
      .handle("remove", ({ path }) =>
        Effect.flatMap(Rbac.requireScope("write"), (principal) => store.remove(principal.tenantId, path.id)).pipe(apiErrors))
      .handle("search", ({ payload }) =>
        Effect.flatMap(Rbac.requireScope("read"), (principal) => store.search(principal.tenantId, payload)).pipe(apiErrors))
  }))

interface UserRow {
  readonly id: string
  readonly email: string
  readonly role: "owner" | "admin" | "agent" | "viewer"
  readonly created_at: Date
}

const decodeUser = (row: UserRow) =>
  Schema.decodeUnknown(User)({
    id: row.id,
    email: row.email,
    role: row.role,
    scopes: Rbac.scopesOf[row.role],
    createdAt: row.created_at.toISOString()
  }).pipe(Effect.mapError((e) => new ApiErrors.Internal({ code: "corrupt_row", message: e.message })))

const keyNotFound = (id: string) => new ApiErrors.NotFound({ code: "api_key_not_found", message: `API key ${id} does not exist` })

const AdminLive = HttpApiBuilder.group(TesseraApi, "admin", (handlers) =>
  Effect.gen(function*() {
    const auth = yield* Auth.Authenticator
    const registry = yield* WorkflowRegistry
    const tessera = yield* TesseraClient
    const db = yield* Database
    const sql = db.sql
    const admin = Rbac.requireScope("admin")
    const inTenant = (principal: Principal) => <A, R>(effect: Effect.Effect<A, SqlError, R>) =>
      db.tenant(principal.tenantId)(effect).pipe(Effect.mapError(sqlUnavailable))
    return handlers
      .handle("tenant", () => Effect.flatMap(admin, (principal) => tessera.tenant(principal.tenantId).GetConfig()).pipe(apiErrors))
      .handle("setPlan", ({ payload }) =>
        Effect.gen(function*() {
          const principal = yield* admin
          const tenant = yield* tessera.tenant(principal.tenantId).UpdatePlan({ plan: payload.plan })
          yield* Audit.record(principal, "tenant.plan.update", `tenant/${principal.tenantId}`, { plan: payload.plan })
          return tenant
        }).pipe(apiErrors))
      .handle("plans", () => Effect.as(admin, Object.values(Plan.builtIn)))
      .handle("createKey", ({ payload }) =>
        Effect.gen(function*() {
          const principal = yield* admin
          const now = yield* Clock.currentTimeMillis
          const created = yield* ApiKeys.create(
            principal.tenantId,
            payload.name,
            payload.scopes,
            payload.expires_in === undefined ? {} : { expiresAt: new Date(now + payload.expires_in * 1000) }
          ).pipe(Effect.mapError(sqlUnavailable))
          const key = (yield* ApiKeys.list(principal.tenantId).pipe(Effect.mapError(sqlUnavailable))).find((k) => k.id === created.id)
          if (key === undefined) return yield* keyNotFound(created.id)
          yield* Audit.record(principal, "api_key.create", `api_key/${created.id}`, { name: payload.name, scopes: payload.scopes })
          return new ApiKeyCreated({ key, api_key: Redacted.value(created.plainKey) })
        }).pipe(Effect.provideService(Database, db)))
      .handle("listKeys", () =>
        Effect.flatMap(admin, (principal) => ApiKeys.list(principal.tenantId).pipe(Effect.mapError(sqlUnavailable))).pipe(
          Effect.provideService(Database, db)
        ))
      .handle("revokeKey", ({ path }) =>
        Effect.gen(function*() {
          const principal = yield* admin
          const key = yield* ApiKeys.revoke(principal.tenantId, path.id).pipe(Effect.mapError(sqlUnavailable))
          if (key === undefined) return yield* keyNotFound(path.id)
          yield* auth.forgetKey(path.id)
          yield* Audit.record(principal, "api_key.revoke", `api_key/${path.id}`)
          return key
        }).pipe(Effect.provideService(Database, db)))
      .handle("rotateKey", ({ path, payload }) =>
        Effect.gen(function*() {
          const principal = yield* admin
          const rotated = yield* ApiKeys.rotate(principal.tenantId, path.id, payload.overlap_seconds).pipe(Effect.mapError(sqlUnavailable))
          if (rotated === undefined) return yield* keyNotFound(path.id)
          yield* auth.forgetKey(path.id)
          yield* Audit.record(principal, "api_key.rotate", `api_key/${path.id}`, {
            new_key: rotated.created.id,
            overlap_seconds: payload.overlap_seconds
          })
          return new ApiKeyCreated({ key: rotated.key, api_key: Redacted.value(rotated.created.plainKey) })
        }).pipe(Effect.provideService(Database, db)))
      .handle("createUser", ({ payload }) =>
        Effect.gen(function*() {
          const principal = yield* admin
          const passwordHash = payload.password === undefined ? null : yield* Passwords.hash(payload.password)
          const rows = yield* inTenant(principal)(sql<UserRow>`INSERT INTO users ${
            sql.insert({
              tenant_id: principal.tenantId,
              id: payload.id,
              email: payload.email,
              role: payload.role,
              password_hash: passwordHash
            })
          } ON CONFLICT DO NOTHING RETURNING *`)
          if (rows[0] === undefined) {
            return yield* new ApiErrors.Conflict({ code: "user_exists", message: `a user with id ${payload.id} or that email exists` })
          }
          yield* Audit.record(principal, "user.create", `user/${payload.id}`, {
            email: payload.email,
            role: payload.role,
            password: payload.password === undefined ? "none" : "set"
          })
          return yield* decodeUser(rows[0])
        }).pipe(Effect.provideService(Database, db)))
      .handle("listUsers", () =>
        Effect.gen(function*() {
          const principal = yield* admin
          const rows = yield* inTenant(principal)(sql<UserRow>`SELECT * FROM users WHERE tenant_id = ${principal.tenantId} ORDER BY id`)
          return yield* Effect.forEach(rows, decodeUser)
        }))
      .handle("setRole", ({ path, payload }) =>
        Effect.gen(function*() {
          const principal = yield* admin
          const rows = yield* inTenant(principal)(sql<UserRow>`UPDATE users SET role = ${payload.role}, updated_at = now()
            WHERE tenant_id = ${principal.tenantId} AND id = ${path.id} RETURNING *`)
          if (rows[0] === undefined) return yield* new ApiErrors.NotFound({ code: "user_not_found", message: `user ${path.id} does not exist` })
          yield* Audit.record(principal, "user.role.update", `user/${path.id}`, { role: payload.role })
          return yield* decodeUser(rows[0])
        }).pipe(Effect.provideService(Database, db)))
      .handle("usage", () =>
        Effect.gen(function*() {
          const principal = yield* admin
          const rows = yield* inTenant(principal)(sql<{
            period: "day" | "month"
            window_start: Date
            requests: string
            tokens: string
            cost_usd: string
            runs: string
          }>`SELECT period, window_start, requests, tokens, cost_usd, runs FROM usage_counters
            WHERE tenant_id = ${principal.tenantId} ORDER BY window_start DESC, period LIMIT 100`)
          return rows.map((row) =>
            new UsageWindow({
              period: row.period,
              windowStart: row.window_start.toISOString().slice(0, 10),
              requests: Number(row.requests),
              tokens: Number(row.tokens),
              costUsd: Number(row.cost_usd),
              runs: Number(row.runs)
            })
          )
        }))
      .handle("listWorkflows", () =>
        Effect.gen(function*() {
          const principal = yield* admin
          const overlays = new Set((yield* registry.overlays(principal.tenantId).pipe(Effect.mapError(sqlUnavailable))).map((o) => o.name))
          return registry.list(principal.tenantId).map((entry) =>
            new WorkflowSummary({ name: entry.name, triggers: entry.triggers, overlay: overlays.has(entry.name) })
          )
        }))
      .handle("uploadWorkflow", ({ payload }) =>
        Effect.gen(function*() {
          const principal = yield* admin
          const workflow = yield* registry.putOverlay(principal.tenantId, { file: payload.file, text: payload.source }).pipe(
            Effect.catchTags({
              WorkflowInvalid: (e) =>
                Effect.fail(
                  new ApiErrors.BadRequest({
                    code: e.code,
                    message: `the workflow is invalid: ${e.diagnostics.length} problem(s), first: ${String(e.diagnostics[0] ?? "")}`,
                    details: { diagnostics: e.diagnostics.map((d) => ({ file: d.file, line: d.line, column: d.column, path: d.path, message: d.message })) }
                  })
                ),
              SqlError: (e) => Effect.fail(sqlUnavailable(e))
            })
          )
          yield* Audit.record(principal, "workflow.upload", `workflow/${workflow.name}`, { file: payload.file })
          const entry = registry.list(principal.tenantId).find((e) => e.name === workflow.name)
          return new WorkflowSummary({ name: workflow.name, triggers: entry?.triggers ?? [], overlay: true })
        }).pipe(Effect.provideService(Database, db)))
      .handle("validateWorkflow", ({ payload }) =>
        Effect.flatMap(admin, () => registry.checkOverlay({ file: payload.file, text: payload.source })).pipe(
          Effect.as(new WorkflowValidation({ valid: true, diagnostics: [] })),
          Effect.catchTag("WorkflowInvalid", (e) =>
            Effect.succeed(
              new WorkflowValidation({
                valid: false,
                diagnostics: e.diagnostics.map((d) => new WorkflowDiagnostic({ line: d.line, column: d.column, field: d.path, message: d.message }))
              })
            ))
        ))
      .handle("removeWorkflow", ({ path }) =>
        Effect.gen(function*() {
          const principal = yield* admin
          const removed = yield* registry.removeOverlay(principal.tenantId, path.name).pipe(Effect.mapError(sqlUnavailable))
          if (!removed) {
            return yield* new ApiErrors.NotFound({ code: "workflow_overlay_not_found", message: `no overlay of workflow ${path.name}` })
          }
          yield* Audit.record(principal, "workflow.remove", `workflow/${path.name}`)
        }).pipe(Effect.provideService(Database, db)))
      .handle("audit", () =>
        Effect.gen(function*() {
          const principal = yield* admin
          const rows = yield* inTenant(principal)(sql<{
            id: string
            actor: string
            action: string
            resource: string
            request_id: string | null
            details: unknown
            created_at: Date
          }>`SELECT * FROM audit_logs WHERE tenant_id = ${principal.tenantId} ORDER BY id DESC LIMIT 200`)
          return rows.map((row) =>
            new AuditEntry({
              id: String(row.id),
              actor: row.actor,
              action: row.action,
              resource: row.resource,
              requestId: row.request_id,
              details: redact(row.details),
              createdAt: DateTime.unsafeMake(row.created_at)
            })
          )
        }))
  }))

/** Routes beside the API: health, metrics, the WebSocket gateway. */
const extraRoutes = HttpApiBuilder.Router.use((router) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* router.concat(Health.routes.pipe(HttpRouter.provideService(SqlClient.SqlClient, sql)))
    yield* router.get("/metrics", Metrics.handler)
    yield* router.get("/v1/realtime", yield* Realtime.handler)
  })
)

const edge = HttpApiBuilder.middleware(HttpEdge.make)

/** The API with its documentation and the extra routes, ready for `HttpApiBuilder.serve`. */
export const layer = Layer.mergeAll(
  HttpApiSwagger.layer({ path: "/docs" }),
  HttpApiBuilder.middlewareOpenApi({ path: "/openapi.json" }),
  extraRoutes,
  edge
).pipe(
  Layer.provideMerge(
    HttpApiBuilder.api(TesseraApi).pipe(
      Layer.provide([AuthLive, MeLive, ChatLive, SessionsLive, RunsLive, KnowledgeLive, AdminLive, Operator.handlers]),
      Layer.provide([Auth.layer, Operator.authentication])
    )
  )
)

/** What the API's handlers and the edge use, on top of a node's database, sharding and knowledge store. */
export const services = Layer.mergeAll(Chat.Default, Idempotency.Default, RealtimeHub.Default).pipe(
  Layer.provideMerge(RunWaiter.Default),
  Layer.provideMerge(Auth.Authenticator.Default),
  Layer.provideMerge(Jwt.Default),
  Layer.provideMerge(RateLimiter.layerConfig),
  Layer.provideMerge(TesseraClient.Default)
)

/** The API served by `server`; the operator token is `TESSERA_OPERATOR_TOKEN` unless `operatorToken` gives it. */
export const serveOn = <E, R, RO = never>(
  server: Layer.Layer<HttpServer.HttpServer | HttpRouter.HttpRouter.DefaultServices, E, R>,
  operatorToken: Layer.Layer<Operator.OperatorToken, ConfigError, RO> = Operator.layerConfig
): Layer.Layer<
  never,
  ConfigError | RateLimiter.RateLimiterError | E,
  SqlClient.SqlClient | Database | Sharding | KnowledgeStore | EventBus | WorkflowRegistry | R | RO
> =>
  HttpApiBuilder.serve().pipe(
    Layer.provide(layer),
    Layer.provide(services),
    HttpServer.withLogAddress,
    // The server listens once the operator token's layer (in development: the demo tenant and
    // its knowledge) is built: a request that reached the socket before its handler would wait
    // for an answer that never comes.
    Layer.provide(Layer.provideMerge(server, operatorToken))
  )

/** The HTTP server of a node on `port` (`host`, default 0.0.0.0). */
export const serve = <RO = never>(options: {
  readonly port: number
  readonly host?: string
  readonly operatorToken?: Layer.Layer<Operator.OperatorToken, ConfigError, RO>
}) =>
  serveOn(
    NodeHttpServer.layer(createServer, { port: options.port, host: options.host ?? "0.0.0.0" }),
    options.operatorToken ?? Operator.layerConfig
  )
