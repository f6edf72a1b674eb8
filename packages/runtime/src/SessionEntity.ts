/**
 * Behaviour of the Session actor. On activation it loads the session row and its most recent
 * `SESSION_HISTORY_WINDOW` messages (default 50); it keeps that window in memory and serves
 * recent history from it, older pages from Postgres. It passivates after
 * `SESSION_IDLE_TIMEOUT` (default 5 minutes) without messages and rehydrates on the next one.
 */
import { Entity } from "@effect/cluster"
import type { Sharding } from "@effect/cluster/Sharding"
import type * as SqlClient from "@effect/sql/SqlClient"
import { HistoryEntry, type Role } from "@tessera/domain/ChatMessage"
import { InvalidId, SessionClosed, SessionNotFound, StorageError } from "@tessera/domain/Errors"
import * as RunEntity from "@tessera/domain/RunEntity"
import { HistoryPage, Session } from "@tessera/domain/Session"
import { SendResult, SessionEntity } from "@tessera/domain/SessionEntity"
import { MessageId, RunId, SessionId, TenantId } from "@tessera/domain/Ids"
import { TenantEntity } from "@tessera/domain/TenantEntity"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Schema from "effect/Schema"
import { randomUUID } from "node:crypto"
import { Database } from "./Database.js"
import { activations } from "./EntityMetrics.js"
import { splitEntityId } from "./internal/entityId.js"
import { clusterErrors, storageError } from "./internal/storage.js"
import * as RunJournal from "./RunJournal.js"
import * as Outbox from "./Outbox.js"

interface SessionRow {
  readonly tenant_id: string
  readonly id: string
  readonly user_id: string
  readonly channel: string
  readonly status: string
  readonly next_seq: number
  readonly created_at: Date
}

interface MessageRow {
  readonly tenant_id: string
  readonly session_id: string
  readonly seq: number
  readonly id: string
  readonly role: Role
  readonly content: string
  readonly run_id: string | null
  readonly created_at: Date
}

const decodeSession = (row: SessionRow) =>
  Schema.decodeUnknown(Session)({
    id: row.id,
    tenantId: row.tenant_id,
    userId: row.user_id,
    channel: row.channel,
    status: row.status,
    createdAt: row.created_at.toISOString()
  }).pipe(Effect.mapError((e) => new StorageError({ operation: "decode session", reason: e.message })))

const decodeEntries = (rows: ReadonlyArray<MessageRow>) =>
  Schema.decodeUnknown(Schema.Array(HistoryEntry))(rows.map((row) => ({
    id: row.id,
    tenantId: row.tenant_id,
    sessionId: row.session_id,
    seq: row.seq,
    role: row.role,
    content: row.content,
    runId: row.run_id,
    createdAt: row.created_at.toISOString()
  }))).pipe(Effect.mapError((e) => new StorageError({ operation: "decode messages", reason: e.message })))

export const layer: Layer.Layer<never, never, Database | SqlClient.SqlClient | Sharding> = Effect.gen(function*() {
  const idleTimeout = yield* Config.duration("SESSION_IDLE_TIMEOUT").pipe(Config.withDefault("5 minutes"))
  const window = yield* Config.integer("SESSION_HISTORY_WINDOW").pipe(Config.withDefault(50))
  return SessionEntity.toLayer(
    Effect.gen(function*() {
      const address = yield* Entity.CurrentAddress
      const parts = splitEntityId(address.entityId)
      const tenantId = TenantId.make(parts.tenantId)
      const sessionId = parts.id
      const db = yield* Database
      const sql = db.sql
      const inTenant = db.tenant(tenantId)
      const tenants = yield* TenantEntity.client
      const runs = yield* RunEntity.handles
      yield* Metric.increment(activations("Session"))

      const loaded = yield* inTenant(Effect.all({
        session: sql<SessionRow>`SELECT * FROM sessions WHERE tenant_id = ${tenantId} AND id = ${sessionId}`,
        recent: sql<MessageRow>`SELECT * FROM messages WHERE tenant_id = ${tenantId} AND session_id = ${sessionId}
          ORDER BY seq DESC LIMIT ${window}`
      })).pipe(Effect.orDie)
      let session: SessionRow | undefined = loaded.session[0]
      let recent: Array<HistoryEntry> = [...(yield* decodeEntries(loaded.recent.slice().reverse()).pipe(Effect.orDie))]

      const remember = (entry: HistoryEntry) => {
        recent.push(entry)
        if (recent.length > window) recent = recent.slice(recent.length - window)
      }

      const requireOpen = Effect.suspend((): Effect.Effect<SessionRow, SessionNotFound | SessionClosed> =>
        session === undefined
          ? Effect.fail(new SessionNotFound({ sessionId }))
          : session.status === "closed"
          ? Effect.fail(new SessionClosed({ sessionId }))
          : Effect.succeed(session)
      )

      const annotate = Effect.annotateLogs({ tenant_id: tenantId, session_id: sessionId })

      return SessionEntity.of({
        Open: ({ payload }) =>
          Effect.gen(function*() {
            if (!Schema.is(SessionId)(sessionId)) return yield* new InvalidId({ kind: "session id", value: sessionId })
            if (session === undefined) {
              const rows = yield* inTenant(sql<SessionRow>`
                INSERT INTO sessions ${
                sql.insert({ tenant_id: tenantId, id: sessionId, user_id: payload.userId, channel: payload.channel })
              } ON CONFLICT (tenant_id, id) DO UPDATE SET updated_at = now() RETURNING *`)
              session = rows[0]
            }
            if (session!.status === "closed") return yield* new SessionClosed({ sessionId })
            return yield* decodeSession(session!)
          }).pipe(Effect.catchTag("SqlError", storageError("session.open")), annotate),

        Send: ({ payload }) =>
          Effect.gen(function*() {
            const current = yield* requireOpen
            const runId = RunId.make(`run_${randomUUID()}`)
            const messageId = MessageId.make(`msg_${randomUUID()}`)
            const seq = current.next_seq
            const input = { message: payload.message, context: payload.context, sessionId, messageId }
            const requested = new RunEntity.RequestedRun({
              workflow: payload.workflow,
              input,
              sessionId: SessionId.make(sessionId),
              userId: payload.userId
            })
            const { run } = RunJournal.requested(tenantId, runId, requested)
            // One statement: the message, the session's next sequence number, the run row and its event.
            const record = inTenant(sql<MessageRow>`
              WITH message AS (
                INSERT INTO messages ${
              sql.insert({
                tenant_id: tenantId,
                session_id: sessionId,
                seq,
                id: messageId,
                role: "user",
                content: payload.message,
                run_id: runId
              })
            } RETURNING *
              ), session AS (
                UPDATE sessions SET next_seq = ${seq + 1}, updated_at = now()
                WHERE tenant_id = ${tenantId} AND id = ${sessionId}
              ), run AS (
                INSERT INTO agent_runs ${
              sql.insert({
                tenant_id: run.tenant_id,
                id: run.id,
                session_id: run.session_id,
                user_id: run.user_id,
                workflow: run.workflow,
                status: run.status,
                input: JSON.stringify(run.input)
              })
            }
              ), event AS (
                INSERT INTO outbox ${sql.insert(Outbox.row(RunJournal.event(run, "agent.run.requested", { input })))}
              )
              SELECT * FROM message`)
            // Admission reserves a run slot; if the run is not recorded (failure or interruption) it is given back.
            const written = yield* Effect.acquireUseRelease(
              tenants(tenantId).Admit({ estimatedTokens: 0, estimatedCostUsd: 0, startsRun: true }).pipe(
                Effect.catchTags(clusterErrors("tenant.admit"))
              ),
              () => record,
              (_, exit) =>
                Exit.isSuccess(exit)
                  ? Effect.void
                  : tenants(tenantId).RecordUsage({ tokens: 0, costUsd: 0, runsFinished: 1 }).pipe(Effect.ignore)
            )
            session = { ...current, next_seq: seq + 1 }
            const [entry] = yield* decodeEntries(written)
            remember(entry!)
            // The run goes on without the caller; if this message is lost, the recovery scan wakes the run.
            yield* runs(tenantId, runId).Start(requested).pipe(
              Effect.catchAllCause((cause) => Effect.logWarning("run start not delivered; recovery will wake it", cause))
            )
            return new SendResult({ runId, messageId })
          }).pipe(Effect.catchTag("SqlError", storageError("session.send")), annotate),

        History: ({ payload }) =>
          Effect.gen(function*() {
            if (session === undefined) return yield* new SessionNotFound({ sessionId })
            const before = payload.before
            const fromMemory = before === undefined
              ? recent
              : recent[0] !== undefined && recent[0].seq < before
              ? recent.filter((e) => e.seq < before)
              : undefined
            let entries: ReadonlyArray<HistoryEntry>
            if (fromMemory !== undefined && (fromMemory.length >= payload.limit || recent[0]?.seq === 1 || recent.length === 0)) {
              entries = fromMemory.slice(Math.max(0, fromMemory.length - payload.limit))
            } else {
              const rows = yield* inTenant(sql<MessageRow>`SELECT * FROM messages
                WHERE tenant_id = ${tenantId} AND session_id = ${sessionId} AND seq < ${before ?? 2147483647}
                ORDER BY seq DESC LIMIT ${payload.limit}`)
              entries = yield* decodeEntries(rows.slice().reverse())
            }
            const oldest = entries[0]?.seq
            return new HistoryPage({ entries, nextBefore: oldest !== undefined && oldest > 1 ? oldest : null })
          }).pipe(Effect.catchTag("SqlError", storageError("session.history")), annotate),

        Close: () =>
          Effect.gen(function*() {
            if (session === undefined) return yield* new SessionNotFound({ sessionId })
            const rows = yield* inTenant(sql<SessionRow>`UPDATE sessions SET status = 'closed', updated_at = now()
              WHERE tenant_id = ${tenantId} AND id = ${sessionId} RETURNING *`)
            session = rows[0]
          }).pipe(Effect.catchTag("SqlError", storageError("session.close")), annotate)
      })
    }),
    { maxIdleTime: idleTimeout }
  )
}).pipe(Layer.unwrapEffect, Layer.orDie)
