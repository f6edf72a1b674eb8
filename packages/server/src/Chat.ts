/**
 * A chat turn: the message goes to the session (`Session.Send` records it and starts the run),
 * then the edge waits for the run to finish, up to `CHAT_DEADLINE` (default 10 seconds), polling
 * the run's row with a short backoff. A finished run answers 200 with its `Answer`; a run still
 * going at the deadline answers 202 with its id. A run output that is not an `Answer` (an older
 * or diagnostic workflow) still yields an answer text: its `answer`, `echo` or `message` field,
 * or its JSON.
 */
import { Answer } from "@tessera/domain/Answer"
import * as ApiErrors from "@tessera/domain/ApiErrors"
import { ChatAccepted, type ChatRequest, ChatResponse, Usage } from "@tessera/domain/Chat"
import { type RunId, SessionId } from "@tessera/domain/Ids"
import type { Principal } from "@tessera/domain/Principal"
import { type RunStatus, unfinished } from "@tessera/domain/Run"
import { Database } from "@tessera/runtime/Database"
import { TesseraClient } from "@tessera/runtime/TesseraClient"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import { randomUUID } from "node:crypto"
import * as DomainErrors from "./DomainErrors.js"

const decodeAnswer = Schema.decodeUnknownEither(Answer)

/** The answer text of a run output that is not an `Answer`. */
const fallbackText = (output: unknown): string => {
  if (typeof output === "string") return output
  for (const key of ["answer", "echo", "message", "text"]) {
    if (Predicate.hasProperty(output, key) && typeof output[key] === "string") return output[key]
  }
  return output === null || output === undefined ? "" : JSON.stringify(output)
}

export interface Finished {
  readonly status: RunStatus
  readonly output: unknown
  readonly error: string | null
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
    const db = yield* Database
    const tessera = yield* TesseraClient
    const deadline = yield* Config.duration("CHAT_DEADLINE").pipe(Config.withDefault(Duration.seconds(10)), Effect.orDie)

    const poll = (principal: Principal, runId: RunId) =>
      db.tenant(principal.tenantId)(db.sql<Finished>`SELECT status, output, error FROM agent_runs
        WHERE tenant_id = ${principal.tenantId} AND id = ${runId}`).pipe(Effect.map((rows) => rows[0]))

    /** The run once it is finished, or undefined at the deadline. */
    const awaitRun = (principal: Principal, runId: RunId, until: number) =>
      Effect.gen(function*() {
        let delay = 2
        while (true) {
          const run = yield* poll(principal, runId)
          if (run !== undefined && !unfinished.includes(run.status)) return run
          const now = yield* Clock.currentTimeMillis
          if (now >= until) return undefined
          yield* Effect.sleep(Duration.millis(Math.min(delay, until - now)))
          delay = Math.min(100, Math.ceil(delay * 1.5))
        }
      })

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
        if (request.tenantId !== undefined && request.tenantId !== principal.tenantId) {
          return yield* new ApiErrors.Forbidden({
            code: "tenant_mismatch",
            message: "tenant_id in the body is not the tenant of the credential",
            details: { field: "tenant_id" }
          })
        }
        const started = yield* Clock.currentTimeMillis
        const { runId, sessionId } = yield* start(principal, request)
        const run = yield* awaitRun(principal, runId, started + Duration.toMillis(deadline)).pipe(
          Effect.mapError((error) => DomainErrors.toApiError(error))
        )
        if (run === undefined) return new ChatAccepted({ sessionId, runId, status: "started" })
        return responseOf(sessionId, runId, run)
      }).pipe(Effect.withSpan("Chat.send"))

    return { start, send } as const
  })
}) {}

export const layer: Layer.Layer<Chat, never, Database | TesseraClient> = Chat.Default
