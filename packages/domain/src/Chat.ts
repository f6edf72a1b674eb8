/**
 * The chat contract of the HTTP edge (`POST /v1/chat/messages`), snake_case on the wire as the
 * seed's ChatMessage: the request, the answer when the run finishes within the deadline, and the
 * 202 body when it does not.
 */
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as Schema from "effect/Schema"
import { Citation } from "./Answer.js"
import { Channel } from "./ChatMessage.js"
import { RunId, SessionId, UserId } from "./Ids.js"
import { RunStatus } from "./Run.js"

const snake = <S extends Schema.Schema.Any>(schema: S, key: string) =>
  Schema.propertySignature(schema).pipe(Schema.fromKey(key))

/** Free-form context for the workflow; string values are data, never templates. */
export const Context = Schema.Record({ key: Schema.String, value: Schema.Unknown })

export class ChatRequest extends Schema.Class<ChatRequest>("ChatRequest")({
  message: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(32_000)),
  userId: snake(UserId, "user_id"),
  sessionId: Schema.optional(SessionId).pipe(Schema.fromKey("session_id")),
  channel: Schema.optionalWith(Channel, { default: () => "api" as const }),
  context: Schema.optionalWith(Context, { default: () => ({}) }),
  /** Accepted only when it is the credential's tenant (the edge refuses another with 403). */
  tenantId: Schema.optional(Schema.String).pipe(Schema.fromKey("tenant_id"))
}) {}

export class Usage extends Schema.Class<Usage>("Usage")({
  tokens: Schema.Int,
  costUsd: snake(Schema.Number, "cost_usd")
}) {}

export class ChatResponse extends Schema.Class<ChatResponse>("ChatResponse")({
  answer: Schema.String,
  sessionId: snake(SessionId, "session_id"),
  runId: snake(RunId, "run_id"),
  status: RunStatus,
  tier: Schema.NullOr(Schema.String),
  citations: Schema.Array(Citation),
  escalated: Schema.Boolean,
  workflow: Schema.String,
  usage: Usage
}) {}

/** The run is still going past the deadline: follow it at `GET /v1/runs/{run_id}` (or its events). */
export class ChatAccepted extends Schema.Class<ChatAccepted>("ChatAccepted")({
  sessionId: snake(SessionId, "session_id"),
  runId: snake(RunId, "run_id"),
  status: RunStatus
}, HttpApiSchema.annotations({ status: 202 })) {}
