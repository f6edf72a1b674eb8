/**
 * The HTTP API of Tessera, as `@effect/platform` `HttpApi` groups. The server implements it,
 * `GET /openapi.json` is generated from it, and clients can derive a typed client from it.
 * Every error has the same body, `{ code, message, details, request_id }` (see ApiErrors).
 */
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"
import {
  ApiKeyCreated,
  AuditEntry,
  CreateApiKey,
  CreateUser,
  RotateApiKey,
  SetPlan,
  SetRole,
  UploadWorkflow,
  UsageWindow,
  User,
  WorkflowSummary,
  WorkflowValidation
} from "./Admin.js"
import { ApiKey } from "./ApiKey.js"
import * as ApiErrors from "./ApiErrors.js"
import { Authentication } from "./Authentication.js"
import { Jwks, PasswordGrant, TokenResponse } from "./AuthToken.js"
import { ChatAccepted, ChatRequest, ChatResponse } from "./Chat.js"
import { Channel } from "./ChatMessage.js"
import { ApiKeyId, RunId, SessionId, TenantId, UserId } from "./Ids.js"
import { Document, DocumentInput, SearchHit, SearchQuery } from "./Knowledge.js"
import { CreateTenant, OperatorAuthentication, TenantCreated, TenantPage } from "./Operator.js"
import { Plan } from "./Plan.js"
import { Principal } from "./Principal.js"
import { Run } from "./Run.js"
import { FeedbackRequest, RunFeedback } from "./RunFeedback.js"
import { HistoryPage, Session } from "./Session.js"
import { Tenant } from "./Tenant.js"

export class AuthGroup extends HttpApiGroup.make("auth")
  .add(
    HttpApiEndpoint.post("token", "/v1/auth/token")
      .addSuccess(TokenResponse)
      .addError(ApiErrors.Unauthorized)
      .addError(ApiErrors.Forbidden)
      .addError(ApiErrors.TooManyRequests)
      .annotate(OpenApi.Description, "A 1-hour RS256 JWT for the API key presented (Authorization: Bearer or X-API-Key).")
  )
  .add(
    HttpApiEndpoint.post("password", "/v1/auth/password")
      .setPayload(PasswordGrant)
      .addSuccess(TokenResponse)
      .addError(ApiErrors.BadRequest)
      .addError(ApiErrors.Unauthorized)
      .addError(ApiErrors.TooManyRequests)
      .annotate(OpenApi.Description, "A 1-hour RS256 JWT for a user's e-mail and password; the scopes of the user's role.")
  )
  .add(HttpApiEndpoint.get("jwks", "/.well-known/jwks.json").addSuccess(Jwks))
  .annotate(OpenApi.Title, "Authentication")
{}

export class MeGroup extends HttpApiGroup.make("me")
  .add(HttpApiEndpoint.get("whoami", "/v1/auth/whoami").addSuccess(Principal))
  .middleware(Authentication)
{}

export class ChatGroup extends HttpApiGroup.make("chat")
  .add(
    HttpApiEndpoint.post("send", "/v1/chat/messages")
      .setPayload(ChatRequest)
      .addSuccess(ChatResponse)
      .addSuccess(ChatAccepted)
      .addError(ApiErrors.BadRequest)
      .addError(ApiErrors.NotFound)
      .addError(ApiErrors.Conflict)
      .addError(ApiErrors.Forbidden)
      .annotate(
        OpenApi.Description,
        "Sends a message and waits for the run's answer up to the chat deadline; past it, 202 with the run id."
      )
  )
  .middleware(Authentication)
{}

const sessionPath = Schema.Struct({ id: SessionId })

export class SessionsGroup extends HttpApiGroup.make("sessions")
  .add(
    HttpApiEndpoint.post("create", "/v1/sessions")
      .setPayload(Schema.Struct({
        user_id: UserId,
        channel: Schema.optionalWith(Channel, { default: () => "api" as const }),
        session_id: Schema.optional(SessionId)
      }))
      .addSuccess(Session, { status: 201 })
  )
  .add(
    HttpApiEndpoint.get("messages", "/v1/sessions/:id/messages")
      .setPath(sessionPath)
      .setUrlParams(Schema.Struct({
        before: Schema.optional(Schema.NumberFromString.pipe(Schema.int())),
        limit: Schema.optionalWith(Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 200)), { default: () => 50 })
      }))
      .addSuccess(HistoryPage)
  )
  .add(
    HttpApiEndpoint.post("close", "/v1/sessions/:id/close")
      .setPath(sessionPath)
      .addSuccess(HttpApiSchema.NoContent)
  )
  .addError(ApiErrors.BadRequest)
  .addError(ApiErrors.Forbidden)
  .addError(ApiErrors.NotFound)
  .addError(ApiErrors.Conflict)
  .middleware(Authentication)
{}

const runPath = Schema.Struct({ id: RunId })

export class RunsGroup extends HttpApiGroup.make("runs")
  .add(HttpApiEndpoint.get("get", "/v1/runs/:id").setPath(runPath).addSuccess(Run))
  .add(
    HttpApiEndpoint.post("cancel", "/v1/runs/:id/cancel")
      .setPath(runPath)
      .setPayload(Schema.Struct({ reason: Schema.optionalWith(Schema.String.pipe(Schema.maxLength(500)), { default: () => "cancelled by the client" }) }))
      .addSuccess(Run)
  )
  .add(
    HttpApiEndpoint.get("events", "/v1/runs/:id/events")
      .setPath(runPath)
      .addSuccess(Schema.String.pipe(HttpApiSchema.withEncoding({ kind: "Text", contentType: "text/event-stream" })))
      .annotate(OpenApi.Description, "Server-Sent Events: the run's steps as they finish, then its final answer.")
  )
  .add(
    HttpApiEndpoint.post("feedback", "/v1/runs/:id/feedback")
      .setPath(runPath)
      .setPayload(FeedbackRequest)
      .addSuccess(RunFeedback)
      .annotate(OpenApi.Description, "Rates the run's answer (+1 / -1, optional comment); a second rating replaces the first. The router learns from it.")
  )
  .addError(ApiErrors.BadRequest)
  .addError(ApiErrors.Forbidden)
  .addError(ApiErrors.NotFound)
  .addError(ApiErrors.Conflict)
  .middleware(Authentication)
{}

const documentPath = Schema.Struct({ id: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(200)) })

export class KnowledgeGroup extends HttpApiGroup.make("knowledge")
  .add(HttpApiEndpoint.post("add", "/v1/knowledge/documents").setPayload(DocumentInput).addSuccess(Document, { status: 201 }))
  .add(
    HttpApiEndpoint.get("list", "/v1/knowledge/documents")
      .setUrlParams(Schema.Struct({
        tag: Schema.optional(Schema.String),
        limit: Schema.optionalWith(Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 500)), { default: () => 50 }),
        offset: Schema.optionalWith(Schema.NumberFromString.pipe(Schema.int(), Schema.nonNegative()), { default: () => 0 })
      }))
      .addSuccess(Schema.Array(Document))
  )
  .add(HttpApiEndpoint.get("get", "/v1/knowledge/documents/:id").setPath(documentPath).addSuccess(Document))
  .add(HttpApiEndpoint.del("remove", "/v1/knowledge/documents/:id").setPath(documentPath).addSuccess(HttpApiSchema.NoContent))
  .add(HttpApiEndpoint.post("search", "/v1/knowledge/search").setPayload(SearchQuery).addSuccess(Schema.Array(SearchHit)))
  .addError(ApiErrors.BadRequest)
  .addError(ApiErrors.Forbidden)
  .addError(ApiErrors.NotFound)
  .addError(ApiErrors.Conflict)
  .middleware(Authentication)
{}

const keyPath = Schema.Struct({ id: ApiKeyId })
const userPath = Schema.Struct({ id: UserId })

export class AdminGroup extends HttpApiGroup.make("admin")
  .add(HttpApiEndpoint.get("tenant", "/v1/admin/tenant").addSuccess(Tenant))
  .add(HttpApiEndpoint.put("setPlan", "/v1/admin/tenant/plan").setPayload(SetPlan).addSuccess(Tenant))
  .add(HttpApiEndpoint.get("plans", "/v1/admin/plans").addSuccess(Schema.Array(Plan)))
  .add(HttpApiEndpoint.post("createKey", "/v1/admin/api-keys").setPayload(CreateApiKey).addSuccess(ApiKeyCreated, { status: 201 }))
  .add(HttpApiEndpoint.get("listKeys", "/v1/admin/api-keys").addSuccess(Schema.Array(ApiKey)))
  .add(HttpApiEndpoint.post("revokeKey", "/v1/admin/api-keys/:id/revoke").setPath(keyPath).addSuccess(ApiKey))
  .add(
    HttpApiEndpoint.post("rotateKey", "/v1/admin/api-keys/:id/rotate")
      .setPath(keyPath)
      .setPayload(RotateApiKey)
      .addSuccess(ApiKeyCreated, { status: 201 })
  )
  .add(HttpApiEndpoint.post("createUser", "/v1/admin/users").setPayload(CreateUser).addSuccess(User, { status: 201 }))
  .add(HttpApiEndpoint.get("listUsers", "/v1/admin/users").addSuccess(Schema.Array(User)))
  .add(HttpApiEndpoint.put("setRole", "/v1/admin/users/:id/role").setPath(userPath).setPayload(SetRole).addSuccess(User))
  .add(HttpApiEndpoint.get("usage", "/v1/admin/usage").addSuccess(Schema.Array(UsageWindow)))
  .add(HttpApiEndpoint.get("audit", "/v1/admin/audit-logs").addSuccess(Schema.Array(AuditEntry)))
  .add(HttpApiEndpoint.get("listWorkflows", "/v1/admin/workflows").addSuccess(Schema.Array(WorkflowSummary)))
  .add(
    HttpApiEndpoint.put("uploadWorkflow", "/v1/admin/workflows")
      .setPayload(UploadWorkflow)
      .addSuccess(WorkflowSummary)
      .annotate(OpenApi.Description, "Validates and stores a tenant overlay; 400 `workflow_invalid` lists file:line:column diagnostics.")
  )
  .add(
    HttpApiEndpoint.post("validateWorkflow", "/v1/admin/workflows/validate")
      .setPayload(UploadWorkflow)
      .addSuccess(WorkflowValidation)
      .annotate(OpenApi.Description, "Checks an overlay as the upload would, storing nothing: `valid` and positioned diagnostics.")
  )
  .add(
    HttpApiEndpoint.del("removeWorkflow", "/v1/admin/workflows/:name")
      .setPath(Schema.Struct({ name: Schema.String.pipe(Schema.pattern(/^[a-z][a-z0-9_]{0,63}$/)) }))
      .addSuccess(HttpApiSchema.NoContent)
  )
  .addError(ApiErrors.BadRequest)
  .addError(ApiErrors.Forbidden)
  .addError(ApiErrors.NotFound)
  .addError(ApiErrors.Conflict)
  .middleware(Authentication)
{}

export class OperatorGroup extends HttpApiGroup.make("operator")
  .add(
    HttpApiEndpoint.post("createTenant", "/v1/operator/tenants")
      .setPayload(CreateTenant)
      .addSuccess(TenantCreated, { status: 201 })
      .annotate(OpenApi.Description, "Provisions a tenant and its first `owner` API key (shown once); 409 `tenant_exists` for a taken id.")
  )
  .add(
    HttpApiEndpoint.get("listTenants", "/v1/operator/tenants")
      .setUrlParams(Schema.Struct({
        after: Schema.optional(TenantId),
        limit: Schema.optionalWith(Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 500)), { default: () => 50 })
      }))
      .addSuccess(TenantPage)
  )
  .addError(ApiErrors.BadRequest)
  .addError(ApiErrors.Conflict)
  .middleware(OperatorAuthentication)
  .annotate(OpenApi.Title, "Operator")
  .annotate(OpenApi.Description, "The platform operator's API (Authorization: Bearer <TESSERA_OPERATOR_TOKEN>); 404 where no token is configured.")
{}

export class TesseraApi extends HttpApi.make("tessera")
  .add(AuthGroup)
  .add(MeGroup)
  .add(ChatGroup)
  .add(SessionsGroup)
  .add(RunsGroup)
  .add(KnowledgeGroup)
  .add(AdminGroup)
  .add(OperatorGroup)
  .addError(ApiErrors.PayloadTooLarge)
  .addError(ApiErrors.TooManyRequests)
  .addError(ApiErrors.Internal)
  .addError(ApiErrors.Unavailable)
  .annotate(OpenApi.Title, "Tessera")
  .annotate(OpenApi.Version, "1")
{}
