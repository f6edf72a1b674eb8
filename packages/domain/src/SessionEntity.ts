/**
 * The Session actor (entity id = `<tenant>/<session>`): one conversation on one channel. Its
 * bounded history lives in memory while active and in Postgres always; an idle session
 * passivates and rehydrates from Postgres on its next message.
 */
import { Entity } from "@effect/cluster"
import { Rpc } from "@effect/rpc"
import * as Schema from "effect/Schema"
import { Channel } from "./ChatMessage.js"
import { InvalidId, QuotaExceeded, SessionClosed, SessionNotFound, StorageError, TenantNotFound } from "./Errors.js"
import { MessageId, RunId, SessionId, TenantId, UserId } from "./Ids.js"
import { HistoryPage, Session } from "./Session.js"

export const entityId = (tenantId: TenantId, sessionId: SessionId): string => `${tenantId}/${sessionId}`

export class SendResult extends Schema.Class<SendResult>("SendResult")({
  runId: RunId,
  messageId: MessageId
}) {}

export const Open = Rpc.make("Open", {
  payload: { userId: UserId, channel: Channel },
  success: Session,
  error: Schema.Union(SessionClosed, InvalidId, StorageError)
})

/**
 * Records the user's message and the run request in one transaction, asks the Tenant to admit
 * it, starts the Run and answers with its id (the run goes on without the caller).
 */
export const Send = Rpc.make("Send", {
  payload: Schema.Struct({
    message: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(32_000)),
    userId: UserId,
    /** The workflow the run executes (default: customer_support, which routes to the others). */
    workflow: Schema.optionalWith(Schema.String, { default: () => "customer_support" }),
    context: Schema.optionalWith(Schema.Record({ key: Schema.String, value: Schema.Unknown }), {
      default: () => ({})
    })
  }),
  success: SendResult,
  error: Schema.Union(SessionNotFound, SessionClosed, QuotaExceeded, TenantNotFound, StorageError)
})

export const History = Rpc.make("History", {
  payload: Schema.Struct({
    before: Schema.optional(Schema.Int),
    limit: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 200)), { default: () => 50 })
  }),
  success: HistoryPage,
  error: Schema.Union(SessionNotFound, StorageError)
})

export const Close = Rpc.make("Close", {
  error: Schema.Union(SessionNotFound, StorageError)
})

export const SessionEntity = Entity.make("Session", [Open, Send, History, Close])

