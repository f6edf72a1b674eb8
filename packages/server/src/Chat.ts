/**
 * A chat turn: the message goes to the session (`Session.Send` records it and starts the run),
 * then the edge waits for the run to finish (RunWaiter), up to `CHAT_DEADLINE` (default 10 seconds). A finished run answers 200 with its `Answer`; a run still
 * going at the deadline answers 202 with its id. A run output that is not an `Answer` (an older
 * or diagnostic workflow) still yields an answer text: its `answer`, `echo` or `message` field,
 * or its JSON.
 */
import { Answer } from "@tessera/domain/Answer"
import * as ApiErrors from "@tessera/domain/ApiErrors"
import { ChatAccepted, type ChatRequest, ChatResponse, Usage } from "@tessera/domain/Chat"
import { type RunId, SessionId } from "@tessera/domain/Ids"
import type { Principal } from "@tessera/domain/Principal"
import { TesseraClient } from "@tessera/runtime/TesseraClient"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import { randomUUID } from "node:crypto"
import * as DomainErrors from "./DomainErrors.js"
import { type Finished, RunWaiter } from "./RunWaiter.js"

const decodeAnswer = Schema.decodeUnknownEither(Answer)

/** The answer text of a run output that is not an `Answer`. */
const fallbackText = (output: unknown): string => {
  if (typeof output === "string") return output
  for (const key of ["answer", "echo", "message", "text"]) {
    if (Predicate.hasProperty(output, key) && typeof output[key] === "string") return output[key]
  }
  return output === null || output === undefined ? "" : JSON.stringify(output)
}

/** The response for a finished run. */
export const responseOf = (sessionId: SessionId, runId: RunId, run: Finished): ChatResponse => {
  const decoded = decodeAnswer(run.output)
  if (Either.isRight(decoded)) {
    const answer = decoded.right
    return new ChatResponse({
      answer: answer.answer,
      sessionId,
      runId,
      status: run.status,
      tier: answer.tier,
      citations: answer.citations,
      escalated: answer.escalated,
      workflow: answer.workflow,
      usage: new Usage({ tokens: answer.usage.tokens, costUsd: answer.usage.costUsd })
    })
  }
  return new ChatResponse({
    answer: run.status === "completed" ? fallbackText(run.output) : run.error ?? "",
    sessionId,
    runId,
    status: run.status,
    tier: null,
    citations: [],
    escalated: false,
    workflow: "",
    usage: new Usage({ tokens: 0, costUsd: 0 })
  })
}

export class Chat extends Effect.Service<Chat>()("@tessera/server/Chat", {
  effect: Effect.gen(function*() {
    const tessera = yield* TesseraClient
    const deadline = yield* Config.duration("CHAT_DEADLINE").pipe(Config.withDefault(Duration.seconds(10)), Effect.orDie)

    const waiter = yield* RunWaiter

    /** Records the message on its session (a new one when none is named) and starts its run. */
    const start = (
      principal: Principal,
      request: Pick<ChatRequest, "message" | "userId" | "sessionId" | "channel" | "context">
    ): Effect.Effect<{ readonly sessionId: SessionId; readonly runId: RunId }, ApiErrors.ApiError> =>
      Effect.gen(function*() {
        let sessionId = request.sessionId
        if (sessionId === undefined) {
          sessionId = SessionId.make(`s_${randomUUID()}`)
          yield* tessera.session(principal.tenantId, sessionId).Open({ userId: request.userId, channel: request.channel })
        }
        const sent = yield* tessera.session(principal.tenantId, sessionId).Send({
          message: request.message,
          userId: request.userId,
          workflow: "customer_support",
          context: request.context
        })
        return { sessionId, runId: sent.runId }
      }).pipe(Effect.mapError((error) => DomainErrors.toApiError(error)))

    const send = (principal: Principal, request: ChatRequest): Effect.Effect<ChatResponse | ChatAccepted, ApiErrors.ApiError> =>
      Effect.gen(function*() {
        const started = yield* Clock.currentTimeMillis
        const { runId, sessionId } = yield* start(principal, request)
        const left = Duration.millis(Math.max(0, started + Duration.toMillis(deadline) - (yield* Clock.currentTimeMillis)))
        const run = yield* waiter.await(principal.tenantId, runId, left)
        return Option.isNone(run) ? new ChatAccepted({ sessionId, runId, status: "started" }) : responseOf(sessionId, runId, run.value)
      }).pipe(Effect.withSpan("Chat.send"))

    return { start, send } as const
  })
}) {}

export const layer: Layer.Layer<Chat, never, RunWaiter | TesseraClient> = Chat.Default
