/**
 * The edge on two `tessera runner` processes sharing one Postgres, one NATS and one Redis: a
 * WebSocket client on one runner receives the answers of runs that execute on the other (events
 * cross through JetStream; no sticky routing), and a tenant's rate limit is exact across both
 * runners (the buckets live in Redis); a client on one runner receives the streamed tokens of
 * answers generated on the other (NATS core), then the final message.
 */
import { assert, describe, it } from "@effect/vitest"
import { TenantId } from "@tessera/domain/Ids"
import { TenantEntity } from "@tessera/domain/TenantEntity"
import * as ApiKeys from "@tessera/runtime/ApiKeys"
import * as ClusterRunner from "@tessera/runtime/ClusterRunner"
import { Database } from "@tessera/runtime/Database"
import { TesseraClient } from "@tessera/runtime/TesseraClient"
import * as TestDatabase from "@tessera/runtime/TestDatabase"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { randomBytes } from "node:crypto"
import * as WsClient from "../../packages/server/test/WsClient.js"
import * as Runners from "../fixtures/Runners.js"

const natsUrl = process.env.NATS_URL ?? "nats://127.0.0.1:4222"
const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379"
const suffix = randomBytes(4).toString("hex")

const spawnRunner = (name: string, databaseUrl: string) =>
  Effect.tap(
    Runners.spawnRunner({
      name,
      databaseUrl,
      env: {
        NATS_URL: natsUrl,
        NATS_STREAM_PREFIX: `edge${suffix}`,
        REDIS_URL: redisUrl,
        RATE_LIMIT_PREFIX: `tessera:rl:edge${suffix}:`,
        EDGE_NODE_ID: `${name}_${suffix}`
      }
    }),
    Runners.readyz
  )

const TestLayers = TesseraClient.Default.pipe(Layer.provideMerge(ClusterRunner.layerClient), Layer.provideMerge(TestDatabase.layer))

describe("edge across two runners", () => {
  it.live("a client on one runner receives the answers of runs executed on the other; rate limits hold across runners", () =>
    Effect.gen(function*() {
      const { url } = yield* TestDatabase.TestDatabaseUrl
      const [r1, r2] = yield* Effect.all([spawnRunner("r1", url), spawnRunner("r2", url)], { concurrency: "unbounded" })
      const tenantId = TenantId.make("crossnode")
      yield* (yield* TenantEntity.client)(tenantId).Provision({ name: "Cross node", plan: "pro" })
      const key = Redacted.value((yield* ApiKeys.create(tenantId, "ws", ["read", "write"])).plainKey)

      const client = yield* WsClient.connect(`${r1!.base.replace("http", "ws")}/v1/realtime`, { authorization: `Bearer ${key}` })
      const sends = 8
      for (let i = 0; i < sends; i++) {
        yield* client.send({ type: "send", id: `c${i}`, message: `question ${i}`, user_id: `u${i}` })
      }
      const runIds: Array<string> = []
      yield* Effect.gen(function*() {
        for (let i = 0; i < sends; i++) {
          const ack = yield* client.waitFor((f) => f.ref === `c${i}`)
          assert.strictEqual(ack.type, "ack", JSON.stringify(ack))
          runIds.push(String(ack.run_id))
        }
        for (const runId of runIds) yield* client.waitFor((f) => f.type === "message" && f.run_id === runId)
      }).pipe(
        Effect.timeoutFail({ duration: "60 seconds", onTimeout: () => "no answer within 60 s" }),
        Effect.tapError(() =>
          Effect.sync(() =>
            console.error(`frames: ${JSON.stringify(client.frames)}\nr1:\n${r1!.output().slice(-4000)}\nr2:\n${r2!.output().slice(-4000)}`)
          )
        )
      )

      // Sessions are spread over both runners' shards: some runs executed on r2, and their answers reached r1's client.
      const db = yield* Database
      const rows = yield* db.tenant(tenantId)(db.sql<{ runner: string | null }>`SELECT runner FROM agent_runs WHERE tenant_id = ${tenantId}`)
      assert.strictEqual(rows.length, sends)
      assert.isTrue(rows.some((row) => row.runner === r2!.address), JSON.stringify(rows))

      // A tenant of 5 requests a minute (set before either runner has read its plan), 12 concurrent
      // requests split over the two runners: exactly 5 pass.
      const limitedTenant = TenantId.make("crosslimit")
      yield* (yield* TenantEntity.client)(limitedTenant).Provision({ name: "Cross limit", plan: "free" })
      yield* db.tenant(limitedTenant)(db.sql`UPDATE tenants SET limits = limits || '{"requestsPerMinute": 5}'::jsonb
        WHERE tenant_id = ${limitedTenant}`)
      const limited = Redacted.value((yield* ApiKeys.create(limitedTenant, "limited", ["read"])).plainKey)
      const statuses = yield* Effect.all(
        Array.from({ length: 12 }, (_, i) =>
          Effect.promise(() =>
            fetch(`${(i % 2 === 0 ? r1 : r2)!.base}/v1/auth/whoami`, { headers: { "x-api-key": limited } }).then((r) => r.status)
          )),
        { concurrency: "unbounded" }
      )
      assert.strictEqual(statuses.filter((s) => s === 200).length, 5, JSON.stringify(statuses))
      assert.strictEqual(statuses.filter((s) => s === 429).length, 7, JSON.stringify(statuses))
    }).pipe(Effect.provide(TestLayers), Effect.scoped), { timeout: 120_000 })

  it.live("a client on one runner receives the streamed tokens of answers generated on the other, then the final message", () =>
    Effect.gen(function*() {
      const { url } = yield* TestDatabase.TestDatabaseUrl
      const [r1, r2] = yield* Effect.all([spawnRunner("t1", url), spawnRunner("t2", url)], { concurrency: "unbounded" })
      const tenantId = TenantId.make("crosstokens")
      yield* (yield* TenantEntity.client)(tenantId).Provision({ name: "Cross tokens", plan: "pro" })
      const key = Redacted.value((yield* ApiKeys.create(tenantId, "ws", ["read", "write"])).plainKey)
      const post = (path: string, body: unknown) =>
        Effect.promise(() =>
          fetch(`${r1!.base}${path}`, { method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" }, body: JSON.stringify(body) })
            .then(async (r) => ({ status: r.status, body: await r.json() as Record<string, unknown> }))
        )
      const doc = yield* post("/v1/knowledge/documents", {
        sourceKey: "shipping",
        title: "Shipping",
        format: "text",
        content: "Standard shipping takes 3 to 5 business days within the EU. Express shipping delivers the next business day."
      })
      assert.strictEqual(doc.status, 201, JSON.stringify(doc.body))

      const client = yield* WsClient.connect(`${r1!.base.replace("http", "ws")}/v1/realtime`, { authorization: `Bearer ${key}` })
      const sends = 8
      const runIds: Array<string> = []
      yield* Effect.gen(function*() {
        for (let i = 0; i < sends; i++) {
          const session = yield* post("/v1/sessions", { user_id: `u${i}` })
          assert.strictEqual(session.status, 201, JSON.stringify(session.body))
          yield* client.send({ type: "subscribe", id: `s${i}`, session_id: session.body.id })
          yield* client.waitFor((f) => f.ref === `s${i}`)
          yield* client.send({ type: "send", id: `c${i}`, message: "How long does standard shipping take?", user_id: `u${i}`, session_id: session.body.id })
          runIds.push(String((yield* client.waitFor((f) => f.type === "ack" && f.ref === `c${i}`)).run_id))
        }
        for (const runId of runIds) yield* client.waitFor((f) => f.type === "message" && f.run_id === runId)
      }).pipe(
        Effect.timeoutFail({ duration: "60 seconds", onTimeout: () => "no answer within 60 s" }),
        Effect.tapError(() =>
          Effect.sync(() =>
            console.error(`frames: ${JSON.stringify(client.frames)}\nt1:\n${r1!.output().slice(-4000)}\nt2:\n${r2!.output().slice(-4000)}`)
          )
        )
      )

      for (const runId of runIds) {
        const final = client.frames.find((f) => f.type === "message" && f.run_id === runId)!
        const answer = String((final.answer as Record<string, unknown>).answer)
        assert.include(answer, "3 to 5 business days")
        const tokens = client.frames.filter((f) => f.type === "token" && f.run_id === runId)
        assert.deepStrictEqual(tokens.map((f) => f.seq), tokens.map((_, i) => i), runId)
        assert.strictEqual(tokens.map((f) => f.delta).join(""), answer, runId)
        assert.isTrue(client.frames.indexOf(tokens[tokens.length - 1]!) < client.frames.indexOf(final), runId)
      }
      // Some of the answers were generated on t2 and streamed to t1's client.
      const db = yield* Database
      const rows = yield* db.tenant(tenantId)(db.sql<{ runner: string | null }>`SELECT runner FROM agent_runs WHERE tenant_id = ${tenantId}`)
      assert.isTrue(rows.some((row) => row.runner === r2!.address), JSON.stringify(rows))
    }).pipe(Effect.provide(TestLayers), Effect.scoped), { timeout: 120_000 })
})
