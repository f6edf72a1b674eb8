import * as Schema from "effect/Schema"
import { Channel, HistoryEntry } from "./ChatMessage.js"
import { SessionId, TenantId, UserId } from "./Ids.js"

export const SessionStatus = Schema.Literal("open", "closed")
export type SessionStatus = typeof SessionStatus.Type

export class Session extends Schema.Class<Session>("Session")({
  id: SessionId,
  tenantId: TenantId,
  userId: UserId,
  channel: Channel,
  status: SessionStatus,
  createdAt: Schema.DateTimeUtc
}) {}

/** One page of history, newest last; `nextBefore` pages further back. */
export class HistoryPage extends Schema.Class<HistoryPage>("HistoryPage")({
  entries: Schema.Array(HistoryEntry),
  nextBefore: Schema.NullOr(Schema.Int)
}) {}
