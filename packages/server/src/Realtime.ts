/**
 * The WebSocket gateway, `GET /v1/realtime`. The connection is authenticated before the upgrade
 * (`Authorization`/`X-API-Key` headers, or `?access_token=` / `?api_key=` for browsers); frames
 * are those of `@tessera/domain/Realtime`.
 *
 * Backpressure: each connection has a send queue of at most `WS_SEND_QUEUE` frames (default
 * 256) in front of its socket, and the writer stops while the socket holds more than
 * `WS_HIGH_WATER_BYTES` (default 1 MiB) unsent. When the queue is full an intermediate frame
 * (step, token) is coalesced with the previous token of its run step (unless it starts the
 * step's answer anew, `seq` 0) or the oldest intermediate frame is dropped
 * (`ws_backpressure_drops`); final frames are never dropped. A run's tokens stop at its final
 * message: a token that arrives after it is not sent. A connection whose
 * queue stays over its bound (finals alone) for `WS_OVER_BOUND_GRACE` (default 5 seconds) is
 * closed with code 4008.
 *
 * Incoming frames larger than `WS_MAX_FRAME_BYTES` (default 64 KiB), malformed or unknown ones
 * get an `error` frame; the connection stays open.
 */
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Socket from "@effect/platform/Socket"
import type { ApiError } from "@tessera/domain/ApiErrors"
import { RunId } from "@tessera/domain/Ids"
import type { Principal } from "@tessera/domain/Principal"
import * as Realtime from "@tessera/domain/Realtime"
import { Database } from "@tessera/runtime/Database"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Metric from "effect/Metric"
import * as ParseResult from "effect/ParseResult"
import * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import type { Writable } from "node:stream"
import { Authenticator, credentialOf } from "./Auth.js"
import { Chat } from "./Chat.js"
import { wsActiveConnections, wsBackpressureDrops, wsClosedOverBound } from "./Metrics.js"
import type { HubEvent } from "./RealtimeHub.js"
import { RealtimeHub, recentSet } from "./RealtimeHub.js"
import { syntaxErrorOffset } from "./internal/json.js"

export interface Settings {
  readonly queueBound: number
  readonly highWaterBytes: number
  readonly maxFrameBytes: number
  readonly overBoundGrace: Duration.Duration
}

export const settingsConfig: Config.Config<Settings> = Config.all({
  queueBound: Config.integer("WS_SEND_QUEUE").pipe(Config.withDefault(256)),
  highWaterBytes: Config.integer("WS_HIGH_WATER_BYTES").pipe(Config.withDefault(1024 * 1024)),
  maxFrameBytes: Config.integer("WS_MAX_FRAME_BYTES").pipe(Config.withDefault(64 * 1024)),
  overBoundGrace: Config.duration("WS_OVER_BOUND_GRACE").pipe(Config.withDefault(Duration.seconds(5)))
})

interface Outgoing {
  readonly final: boolean
  /** For coalescing tokens: the run and step of a token frame. */
  readonly tokenOf: string | undefined
  frame: Realtime.ServerFrame
}

/**
 * A connection's bounded send queue. `push` never blocks: it makes room by coalescing or dropping
 * intermediate frames and reports how many it dropped; finals are always kept.
 */
export const makeSendQueue = (bound: number) => {
  const items: Array<Outgoing> = []
  const push = (frame: Realtime.ServerFrame): number => {
    const final = frame.type !== "step" && frame.type !== "token"
    const tokenOf = frame.type === "token" ? `${frame.run_id}/${frame.step_id}` : undefined
    if (final || items.length < bound) {
      items.push({ final, tokenOf, frame })
      return 0
    }
    const last = items[items.length - 1]
    if (frame.type === "token" && frame.seq > 0 && last !== undefined && last.tokenOf === tokenOf && last.frame.type === "token") {
      last.frame = new Realtime.TokenFrame({ ...last.frame, delta: last.frame.delta + frame.delta })
      return 1
    }
    const oldest = items.findIndex((item) => !item.final)
    if (oldest < 0) return 1
    items.splice(oldest, 1)
    items.push({ final, tokenOf, frame })
    return 1
  }
  const shift = (): Realtime.ServerFrame | undefined => items.shift()?.frame
  return { push, shift, size: () => items.length, overBound: () => items.length > bound }
}

const encodeFrame = Schema.encode(Realtime.ServerFrame)
const decodeFrame = Schema.decodeUnknownEither(Realtime.ClientFrame)

const waitForDrain = (socket: Writable, timeout: Duration.Duration) =>
  Effect.async<void>((resume) => {
    const done = () => resume(Effect.void)
    socket.once("drain", done)
    return Effect.sync(() => socket.off("drain", done))
  }).pipe(Effect.timeoutOption(timeout), Effect.asVoid)

export const handler = Effect.gen(function*() {
  const settings = yield* settingsConfig.pipe(Effect.orDie)
  const auth = yield* Authenticator
  const chat = yield* Chat
  const hub = yield* RealtimeHub
  const db = yield* Database

  const connection = (principal: Principal, request: HttpServerRequest.HttpServerRequest) =>
    Effect.gen(function*() {
      const socket = yield* request.upgrade
      const raw = NodeHttpServerRequest.toIncomingMessage(request).socket
      const write = yield* socket.writer
      const queue = makeSendQueue(settings.queueBound)
      const bell = yield* Queue.sliding<void>(1)
      let counter = 0
      let overSince: number | undefined
      const nextId = () => `i_${++counter}`
      const runs = new Set<string>()
      const sessions = new Set<string>()
      const runSessions = new Map<string, string | null>()
      /** Runs whose final this connection has sent: their late tokens are not. */
      const finished = recentSet(1000)

      const closeSlow = write(new Socket.CloseEvent(Realtime.CloseCode.slowConsumer, "send queue over its bound: the consumer is too slow")).pipe(
        Effect.zipRight(Metric.increment(wsClosedOverBound)),
        Effect.zipRight(Effect.interrupt)
      )

      const checkBound = Effect.gen(function*() {
        if (!queue.overBound()) {
          overSince = undefined
          return
        }
        const now = yield* Clock.currentTimeMillis
        overSince ??= now
        if (now - overSince > Duration.toMillis(settings.overBoundGrace)) return yield* closeSlow
      })

      const send = (frame: Realtime.ServerFrame) =>
        Effect.gen(function*() {
          const dropped = queue.push(frame)
          if (dropped > 0) yield* Metric.incrementBy(wsBackpressureDrops, dropped)
          yield* Queue.offer(bell, undefined)
        })

      const error = (ref: string | null, code: string, message: string) =>
        send(new Realtime.ErrorFrame({ id: nextId(), ref, code, message }))

      // The writer: one frame at a time, never past the socket's high-water mark.
      const writer = Effect.gen(function*() {
        while (true) {
          yield* checkBound
          if (raw.writableLength > settings.highWaterBytes) {
            yield* waitForDrain(raw, Duration.millis(100))
            continue
          }
          const frame = queue.shift()
          if (frame === undefined) {
            yield* Queue.take(bell)
            continue
          }
          yield* write(JSON.stringify(yield* encodeFrame(frame)))
        }
      })

      const sessionOf = (runId: string) =>
        Effect.gen(function*() {
          if (runSessions.has(runId)) return runSessions.get(runId) ?? null
          const rows = yield* db.tenant(principal.tenantId)(db.sql<{ session_id: string | null }>`SELECT session_id FROM agent_runs
            WHERE tenant_id = ${principal.tenantId} AND id = ${runId}`)
          const session = rows[0]?.session_id ?? null
          runSessions.set(runId, session)
          return session
        })

      const wants = (event: HubEvent) =>
        Effect.gen(function*() {
          if (event.tenantId !== principal.tenantId) return false
          if (runs.has(event.runId)) return true
          if (sessions.size === 0) return false
          const session = event._tag === "Progress" ? yield* sessionOf(event.runId) : event.sessionId
          return session !== null && sessions.has(session)
        })

      const deliver = (event: HubEvent) =>
        Effect.gen(function*() {
          if (!(yield* wants(event))) return
          if (event._tag === "Progress") {
            return yield* send(new Realtime.StepFrame({ id: nextId(), run_id: RunId.make(event.runId), event: event.event, detail: event.detail }))
          }
          if (event._tag === "Token") {
            if (finished.has(event.runId)) return
            return yield* send(
              new Realtime.TokenFrame({ id: nextId(), run_id: RunId.make(event.runId), step_id: event.stepId, seq: event.seq, delta: event.text })
            )
          }
          finished.add(event.runId)
          const answer = yield* Schema.decodeUnknown(Realtime.MessageFrame.fields.answer)(event.answer)
          yield* send(
            new Realtime.MessageFrame({
              id: `f_${event.seq}`,
              run_id: answer.runId,
              session_id: answer.sessionId,
              answer
            })
          )
        })

      const onFrame = (frame: Realtime.ClientFrame): Effect.Effect<void, unknown> => {
        switch (frame.type) {
          case "ping":
            return send(new Realtime.PongFrame({ id: nextId(), ref: frame.id }))
          case "send":
            if (!principal.has("write")) return error(frame.id, "insufficient_scope", `this credential lacks the "write" scope`)
            return chat.start(principal, {
              message: frame.message,
              userId: frame.user_id,
              sessionId: frame.session_id,
              channel: "web",
              context: frame.context
            }).pipe(
              Effect.tap(({ runId }) => Effect.sync(() => runs.add(runId))),
              Effect.flatMap(({ runId, sessionId }) =>
                send(new Realtime.AckFrame({ id: nextId(), ref: frame.id, session_id: sessionId, run_id: runId }))
              ),
              Effect.catchAll((e: ApiError) => error(frame.id, e.code, e.message))
            )
          case "subscribe":
            return Effect.gen(function*() {
              const found = yield* db.tenant(principal.tenantId)(db.sql`SELECT 1 FROM sessions
                WHERE tenant_id = ${principal.tenantId} AND id = ${frame.session_id}`)
              if (found.length === 0) return yield* error(frame.id, "session_not_found", `session ${frame.session_id} does not exist`)
              sessions.add(frame.session_id)
              yield* send(new Realtime.AckFrame({ id: nextId(), ref: frame.id, session_id: frame.session_id, run_id: null }))
              const after = frame.last_frame_id === undefined ? undefined : Number(frame.last_frame_id.slice(2))
              if (after !== undefined) {
                for (const final of yield* hub.finalsSince(principal.tenantId, frame.session_id, after)) yield* deliver(final)
              }
            })
        }
      }

      const onMessage = (data: string | Uint8Array) =>
        Effect.gen(function*() {
          const size = typeof data === "string" ? Buffer.byteLength(data) : data.byteLength
          if (size > settings.maxFrameBytes) {
            return yield* error(null, "frame_too_large", `frames are limited to ${settings.maxFrameBytes} bytes; this one has ${size}`)
          }
          const text = typeof data === "string" ? data : new TextDecoder().decode(data)
          let json: unknown
          try {
            json = JSON.parse(text)
          } catch {
            return yield* error(null, "malformed_json", `the frame is not valid JSON (at offset ${syntaxErrorOffset(text) ?? 0})`)
          }
          const ref = typeof json === "object" && json !== null && "id" in json && typeof json.id === "string" ? json.id : null
          const decoded = decodeFrame(json)
          if (Either.isLeft(decoded)) {
            const issue = ParseResult.ArrayFormatter.formatErrorSync(decoded.left)[0]
            const where = issue === undefined || issue.path.length === 0 ? "" : ` at ${issue.path.join(".")}`
            return yield* error(ref, "invalid_frame", `invalid frame${where}: ${issue?.message ?? "not a frame"}`)
          }
          yield* onFrame(decoded.right).pipe(
            Effect.catchAllCause((cause) =>
              Effect.zipRight(Effect.logWarning("realtime frame failed", cause), error(ref, "internal_error", "the frame could not be handled"))
            )
          )
        })

      yield* Metric.increment(wsActiveConnections)
      yield* Effect.addFinalizer(() => Metric.incrementBy(wsActiveConnections, -1))
      const events = yield* hub.subscribe
      yield* Queue.take(events).pipe(
        Effect.flatMap((event) => deliver(event).pipe(Effect.catchAllCause((cause) => Effect.logWarning("realtime event not delivered", cause)))),
        Effect.forever,
        Effect.forkScoped
      )
      yield* Effect.raceFirst(socket.runRaw(onMessage), writer)
    }).pipe(
      Effect.scoped,
      Effect.catchAllCause((cause) => Effect.logDebug("realtime connection ended", cause)),
      Effect.annotateLogs({ tenant_id: principal.tenantId })
    )

  return Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const query = new URL(request.url, "http://localhost").searchParams
    const principal = yield* auth.authenticate(credentialOf(request.headers, query))
    yield* connection(principal, request)
    return HttpServerResponse.empty()
  })
})

