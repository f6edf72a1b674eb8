/**
 * The node's feed of run events for the WebSocket gateway. One durable consumer per node
 * (`EDGE_NODE_ID`, default `<host name>_<PORT>`) takes `agent.run.*` and `tool.call.*` of every tenant
 * from the event bus, so a client connected here follows runs that execute on any node. A run's
 * final event becomes a final frame, persisted once in `realtime_finals` (every node computes
 * the same row; the first insert wins) and numbered there, so a client that reconnects resumes
 * from its last final frame id. Events older than the hub (a new consumer replays the stream)
 * are acknowledged and skipped.
 *
 * Streamed tokens come from the `TokenStream` (every tenant's, ephemeral, NATS core across
 * nodes) when the node has one. A run's tokens that reach the hub after its final event are
 * dropped, so no client sees a token of a run after that run's final message.
 */
import type { EventEnvelope } from "@tessera/domain/Event"
import { ChatResponse } from "@tessera/domain/Chat"
import { RunId, SessionId, TenantId } from "@tessera/domain/Ids"
import type { RunStatus } from "@tessera/domain/Run"
import { Database } from "@tessera/runtime/Database"
import { EventBus } from "@tessera/runtime/EventBus"
import { TokenStream } from "@tessera/runtime/TokenStream"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { hostname } from "node:os"
import { responseOf } from "./Chat.js"

export interface Final {
  readonly _tag: "Final"
  readonly tenantId: string
  readonly sessionId: string | null
  readonly runId: string
  readonly seq: number
  /** The encoded `ChatResponse`. */
  readonly answer: unknown
}

export interface Progress {
  readonly _tag: "Progress"
  readonly tenantId: string
  readonly runId: string
  readonly event: string
  readonly detail: unknown
}

export interface Token {
  readonly _tag: "Token"
  readonly tenantId: string
  readonly sessionId: string
  readonly runId: string
  readonly stepId: string
  readonly seq: number
  readonly text: string
}

export type HubEvent = Final | Progress | Token

/** A set that remembers only its `bound` most recent members. */
export const recentSet = (bound: number) => {
  const members = new Set<string>()
  return {
    add: (member: string) => {
      members.add(member)
      for (const oldest of members) {
        if (members.size <= bound) break
        members.delete(oldest)
      }
    },
    has: (member: string) => members.has(member)
  }
}

interface FinalRow {
  readonly seq: string
  readonly session_id: string | null
  readonly run_id: string
  readonly frame: unknown
}

const finalTypes = new Set(["agent.run.completed", "agent.run.failed", "agent.run.cancelled"])

const encodeResponse = Schema.encode(ChatResponse)

/** `EDGE_NODE_ID`, default `<host name>_<PORT>`: unique per process on a host, stable across its restarts. */
const nodeIdConfig = Config.string("EDGE_NODE_ID").pipe(
  Config.orElse(() => Config.map(Config.port("PORT").pipe(Config.withDefault(8080)), (port) => `${hostname()}_${port}`)),
  Config.map((id) => id.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 60))
)

/** Finals handled at once by the hub. */
const finalsAtOnce = 16

export class RealtimeHub extends Effect.Service<RealtimeHub>()("@tessera/server/RealtimeHub", {
  scoped: Effect.gen(function*() {
    const db = yield* Database
    const bus = yield* EventBus
    const sql = db.sql
    const nodeId = yield* nodeIdConfig.pipe(Effect.orDie)
    const hub = yield* PubSub.unbounded<HubEvent>()
    const startedAt = (yield* Clock.currentTimeMillis) - 5_000
    /** The last 10,000 runs whose final event this hub has published (tenant/run). */
    const finished = recentSet(10_000)

    /** The final frame of a run, persisted once (whichever node gets there first). */
    const persistFinal = (tenantId: TenantId, runId: string) =>
      db.tenant(tenantId)(Effect.gen(function*() {
        const run = (yield* sql<{ session_id: string | null; status: RunStatus; output: unknown; error: string | null }>`
          SELECT session_id, status, output, error FROM agent_runs WHERE tenant_id = ${tenantId} AND id = ${runId}`)[0]
        if (run === undefined || run.session_id === null) return undefined
        const answer = yield* encodeResponse(responseOf(SessionId.make(run.session_id), RunId.make(runId), run))
        const rows = yield* sql<FinalRow>`INSERT INTO realtime_finals ${
          sql.insert({ tenant_id: tenantId, session_id: run.session_id, run_id: runId, frame: JSON.stringify(answer) })
        } ON CONFLICT (tenant_id, run_id) DO UPDATE SET run_id = excluded.run_id RETURNING seq, session_id, run_id, frame`
        return rows[0]
      }))

    const handle = (envelope: EventEnvelope): Effect.Effect<void, unknown> =>
      Effect.gen(function*() {
        if (DateTime.toEpochMillis(envelope.timestamp) < startedAt || envelope.run_id === null) return
        const tenantId = yield* Schema.decode(TenantId)(envelope.tenant_id)
        if (finalTypes.has(envelope.event_type)) {
          const row = yield* persistFinal(tenantId, envelope.run_id)
          if (row === undefined) return
          finished.add(`${tenantId}/${row.run_id}`)
          yield* PubSub.publish(hub, {
            _tag: "Final",
            tenantId,
            sessionId: row.session_id,
            runId: row.run_id,
            seq: Number(row.seq),
            answer: row.frame
          })
        } else {
          yield* PubSub.publish(hub, {
            _tag: "Progress",
            tenantId,
            runId: envelope.run_id,
            event: envelope.event_type,
            detail: envelope.payload
          })
        }
      })

    // Progress is published in the feed's order. A final (a Postgres insert and a run lookup) is
    // handled beside the feed, up to `finalsAtOnce` at a time, so one slow insert does not hold
    // every event behind it; a run's final comes after its progress in the feed, so it is still
    // published after it.
    const scope = yield* Effect.scope
    const finals = yield* Effect.makeSemaphore(finalsAtOnce)
    yield* bus.subscribe({ durable: `edge_${nodeId}`, subjects: ["agent.run.>", "tool.call.>"] }).pipe(
      Stream.runForEach((delivery) => {
        const settled = handle(delivery.envelope).pipe(
          Effect.matchCauseEffect({
            onFailure: (cause) => Effect.zipRight(Effect.logWarning("realtime event not handled; redelivering", cause), delivery.nak("1 second")),
            onSuccess: () => delivery.ack
          })
        )
        return finalTypes.has(delivery.envelope.event_type)
          ? Effect.zipRight(finals.take(1), Effect.forkIn(Effect.ensuring(settled, finals.release(1)), scope))
          : settled
      }),
      Effect.tapErrorCause((cause) => Effect.logWarning("realtime feed interrupted; resubscribing", cause)),
      Effect.retry(Schedule.spaced("1 second")),
      Effect.forkScoped
    )

    const tokens = yield* Effect.serviceOption(TokenStream)
    if (Option.isSome(tokens)) {
      yield* tokens.value.subscribe.pipe(
        Stream.runForEach((delta) =>
          finished.has(`${delta.tenantId}/${delta.runId}`)
            ? Effect.void
            : PubSub.publish(hub, {
              _tag: "Token",
              tenantId: delta.tenantId,
              sessionId: delta.sessionId,
              runId: delta.runId,
              stepId: delta.stepId,
              seq: delta.seq,
              text: delta.text
            })
        ),
        Effect.tapErrorCause((cause) => Effect.logWarning("token feed interrupted; resubscribing", cause)),
        Effect.retry(Schedule.spaced("1 second")),
        Effect.forkScoped
      )
    }

    /** The finals of a session after `afterSeq`, oldest first. */
    const finalsSince = (tenantId: TenantId, sessionId: string, afterSeq: number) =>
      db.tenant(tenantId)(sql<FinalRow>`SELECT seq, session_id, run_id, frame FROM realtime_finals
        WHERE tenant_id = ${tenantId} AND session_id = ${sessionId} AND seq > ${afterSeq} ORDER BY seq LIMIT 1000`).pipe(
          Effect.map((rows) =>
            rows.map((row): Final => ({
              _tag: "Final",
              tenantId,
              sessionId: row.session_id,
              runId: row.run_id,
              seq: Number(row.seq),
              answer: row.frame
            }))
          )
        )

    /** This node's events, from now on, for as long as the scope lives. */
    const subscribe = PubSub.subscribe(hub)

    return { subscribe, finalsSince } as const
  })
}) {}

export const layer: Layer.Layer<RealtimeHub, never, Database | EventBus> = RealtimeHub.Default
