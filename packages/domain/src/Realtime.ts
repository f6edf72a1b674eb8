/**
 * The frames of the WebSocket gateway (`/v1/realtime`), JSON text messages with a `type` and an
 * `id`. The client sends `send` (a chat message), `subscribe` (a session's runs, resuming after
 * `last_frame_id`) and `ping`; the server answers `ack`, `pong` and `error` (with the `ref` of
 * the frame it answers) and pushes `step` and `token` (intermediate: a slow consumer may miss
 * some) and `message` (final: a run's answer, never dropped, persisted so a reconnecting client
 * gets what it missed; its id is `f_<n>`, increasing).
 */
import * as Schema from "effect/Schema"
import { ChatResponse, Context } from "./Chat.js"
import { RunId, SessionId, UserId } from "./Ids.js"

const FrameId = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(100))

// --- client → server --------------------------------------------------------------------------

export class SendFrame extends Schema.Class<SendFrame>("SendFrame")({
  type: Schema.tag("send"),
  id: FrameId,
  message: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(32_000)),
  user_id: UserId,
  session_id: Schema.optional(SessionId),
  context: Schema.optionalWith(Context, { default: () => ({}) })
}) {}

export class SubscribeFrame extends Schema.Class<SubscribeFrame>("SubscribeFrame")({
  type: Schema.tag("subscribe"),
  id: FrameId,
  session_id: SessionId,
  /** The id of the last final frame the client has; the finals after it are sent first. */
  last_frame_id: Schema.optional(Schema.String.pipe(Schema.pattern(/^f_\d{1,18}$/)))
}) {}

export class PingFrame extends Schema.Class<PingFrame>("PingFrame")({
  type: Schema.tag("ping"),
  id: FrameId
}) {}

export const ClientFrame = Schema.Union(SendFrame, SubscribeFrame, PingFrame)
export type ClientFrame = typeof ClientFrame.Type

// --- server → client --------------------------------------------------------------------------

export class AckFrame extends Schema.Class<AckFrame>("AckFrame")({
  type: Schema.tag("ack"),
  id: FrameId,
  ref: Schema.String,
  session_id: SessionId,
  run_id: Schema.NullOr(RunId)
}) {}

export class PongFrame extends Schema.Class<PongFrame>("PongFrame")({
  type: Schema.tag("pong"),
  id: FrameId,
  ref: Schema.String
}) {}

export class ErrorFrame extends Schema.Class<ErrorFrame>("ErrorFrame")({
  type: Schema.tag("error"),
  id: FrameId,
  ref: Schema.NullOr(Schema.String),
  code: Schema.String,
  message: Schema.String
}) {}

/** Progress of a run: a step or tool call happened (intermediate). */
export class StepFrame extends Schema.Class<StepFrame>("StepFrame")({
  type: Schema.tag("step"),
  id: FrameId,
  run_id: RunId,
  event: Schema.String,
  detail: Schema.Unknown
}) {}

/**
 * Streamed model output of a run's `llm` step (intermediate). `seq` numbers the deltas of one
 * answer from 0: a frame with `seq` 0 starts the step's answer anew (a retried or escalated
 * attempt), a gap in `seq` means frames were dropped. Consecutive deltas of a step may be
 * coalesced into one frame, which keeps the `seq` of its first delta.
 */
export class TokenFrame extends Schema.Class<TokenFrame>("TokenFrame")({
  type: Schema.tag("token"),
  id: FrameId,
  run_id: RunId,
  step_id: Schema.String,
  seq: Schema.NonNegativeInt,
  delta: Schema.String
}) {}

/** A run's final answer. */
export class MessageFrame extends Schema.Class<MessageFrame>("MessageFrame")({
  type: Schema.tag("message"),
  id: FrameId,
  run_id: RunId,
  session_id: Schema.NullOr(SessionId),
  answer: ChatResponse
}) {}

export const ServerFrame = Schema.Union(AckFrame, PongFrame, ErrorFrame, StepFrame, TokenFrame, MessageFrame)
export type ServerFrame = typeof ServerFrame.Type

/** WebSocket close codes of the gateway. */
export const CloseCode = {
  /** The consumer stayed over its send-queue bound: it reads too slowly. */
  slowConsumer: 4008
} as const
