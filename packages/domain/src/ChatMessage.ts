import * as Schema from "effect/Schema"
import { MessageId, RunId, SessionId, TenantId, UserId } from "./Ids.js"

export const Channel = Schema.Literal("web", "api", "whatsapp", "email", "sms", "voice")
export type Channel = typeof Channel.Type

export const Role = Schema.Literal("user", "assistant", "system", "tool")
export type Role = typeof Role.Type

/** What a customer sends (the seed's ChatMessage). */
export class ChatMessage extends Schema.Class<ChatMessage>("ChatMessage")({
  message: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(32_000)),
  userId: UserId,
  sessionId: Schema.optional(SessionId),
  channel: Schema.optionalWith(Channel, { default: () => "api" as const }),
  context: Schema.optionalWith(Schema.Record({ key: Schema.String, value: Schema.Unknown }), { default: () => ({}) })
}) {}

/** One message of a session's history as stored. */
export class HistoryEntry extends Schema.Class<HistoryEntry>("HistoryEntry")({
  id: MessageId,
  tenantId: TenantId,
  sessionId: SessionId,
  seq: Schema.Int,
  role: Role,
  content: Schema.String,
  runId: Schema.NullOr(RunId),
  createdAt: Schema.DateTimeUtc
}) {}
