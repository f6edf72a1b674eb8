import { TestRunner } from "@effect/cluster"
import { assert, describe, it } from "@effect/vitest"
import { RunId, SessionId, TenantId, UserId } from "@tessera/domain/Ids"
import * as RunEntity from "@tessera/domain/RunEntity"
import { SessionEntity, entityId as sessionEntityId } from "@tessera/domain/SessionEntity"
import { TenantEntity } from "@tessera/domain/TenantEntity"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as TestClock from "effect/TestClock"
import { Database } from "../src/Database.js"
import { activations } from "../src/EntityMetrics.js"
import * as KnowledgeStore from "../src/KnowledgeStore.js"
import * as LocalEmbedder from "../src/LocalEmbedder.js"
import * as PgVectorStore from "../src/PgVectorStore.js"
import * as RunEntityLive from "../src/RunEntity.js"
import * as RunRecovery from "../src/RunRecovery.js"
import * as SessionEntityLive from "../src/SessionEntity.js"
import * as TenantEntityLive from "../src/TenantEntity.js"
import * as TestDatabase from "../src/TestDatabase.js"
import * as ToolRegistry from "../src/ToolRegistry.js"
import * as WorkflowPlans from "../src/WorkflowPlans.js"

// The runner acquires its shards on its own schedule: let simulated time pass until it has.
const shardsAcquired = Layer.effectDiscard(TestClock.adjust("5 seconds"))

// Runs execute the built-in echo workflow: the real tool registry, no other plan.
const Workflows = Layer.mergeAll(
  ToolRegistry.layer.pipe(Layer.provide(KnowledgeStore.layer), Layer.provide(PgVectorStore.layer), Layer.provide(LocalEmbedder.layer)),
  WorkflowPlans.layerStatic([])
).pipe(Layer.orDie)

const Entities = Layer.mergeAll(TenantEntityLive.layer, SessionEntityLive.layer, RunEntityLive.layer).pipe(
  Layer.provideMerge(Workflows),
  Layer.provideMerge(TestRunner.layer),
  Layer.provideMerge(TestDatabase.layer),
  (layer) => Layer.provideMerge(shardsAcquired, layer)
)

const activationCount = (entityType: string) =>
  Effect.map(Metric.value(activations(entityType)), (state) => state.count)

const tenantId = TenantId.make("acme")

/**
 * Runs go on after `Send` answers; wait (on Postgres, not on the clock) until none is unfinished,
 * so the test's assertions see them done and the cluster shuts down with no run mid-step.
 */
const runsSettled = Effect.gen(function*() {
  const db = yield* Database
  const rows = yield* db.system(db.sql<{ n: string }>`SELECT count(*) AS n FROM agent_runs WHERE status IN ('requested', 'started')`)
  return Number(rows[0]?.n ?? 0)
}).pipe(Effect.repeat({ until: (unfinished) => unfinished === 0 }))

describe("Tenant", () => {
  it.scoped("Admit denies past the plan's request limit and admits again after the window", () =>
    Effect.gen(function*() {
      const tenants = yield* TenantEntity.client
      const acme = tenants(tenantId)
      const tenant = yield* acme.Provision({ name: "Acme", plan: "free" })
      const limit = tenant.plan.limits.requestsPerMinute
      assert.strictEqual(limit, 60)

      for (let i = 0; i < limit; i++) yield* acme.Admit({})
      const denied = yield* Effect.flip(acme.Admit({}))
      assert.strictEqual(denied._tag, "QuotaExceeded")
      if (denied._tag === "QuotaExceeded") {
        assert.strictEqual(denied.quota, "requests_per_minute")
        assert.strictEqual(denied.retryAfterMs, 1_000)
      }

      // One request's worth of the window later, exactly one more is admitted.
      yield* TestClock.adjust("1 second")
      yield* acme.Admit({})
      assert.strictEqual((yield* Effect.flip(acme.Admit({})))._tag, "QuotaExceeded")

      // A full window later the whole limit is back.
      yield* TestClock.adjust("1 minute")
      for (let i = 0; i < limit; i++) yield* acme.Admit({})
      assert.strictEqual((yield* Effect.flip(acme.Admit({})))._tag, "QuotaExceeded")
    }).pipe(Effect.provide(Entities)))

  it.scoped("Admit refuses a run past the plan's concurrency and a token estimate past the day's quota", () =>
    Effect.gen(function*() {
      const acme = (yield* TenantEntity.client)(tenantId)
      const tenant = yield* acme.Provision({ name: "Acme", plan: "free" })
      const { maxConcurrentRuns, tokensPerDay } = tenant.plan.limits
      for (let i = 0; i < maxConcurrentRuns; i++) yield* acme.Admit({ startsRun: true })
      const busy = yield* Effect.flip(acme.Admit({ startsRun: true }))
      assert.strictEqual(busy._tag === "QuotaExceeded" && busy.quota, "concurrent_runs")
      yield* acme.RecordUsage({ tokens: tokensPerDay - 10, costUsd: 0, runsFinished: 1 })
      yield* acme.Admit({ startsRun: true })
      const tokens = yield* Effect.flip(acme.Admit({ estimatedTokens: 11 }))
      assert.strictEqual(tokens._tag === "QuotaExceeded" && tokens.quota, "tokens_per_day")
    }).pipe(Effect.provide(Entities)))

  it.scoped("unknown tenants are refused with TenantNotFound", () =>
    Effect.gen(function*() {
      const ghost = (yield* TenantEntity.client)("ghost")
      const error = yield* Effect.flip(ghost.Admit({}))
      assert.strictEqual(error._tag, "TenantNotFound")
      const invalid = yield* Effect.flip((yield* TenantEntity.client)("bad.tenant").Provision({ name: "Bad", plan: "free" }))
      assert.strictEqual(invalid._tag, "InvalidId")
      const badSession = yield* Effect.flip((yield* SessionEntity.client)("acme/not a session").Open({ userId: UserId.make("u"), channel: "web" }))
      assert.strictEqual(badSession._tag, "InvalidId")
    }).pipe(Effect.provide(Entities)))
})

describe("Session", () => {
  it.scoped("an idle session passivates and comes back with its history from Postgres", () =>
    Effect.gen(function*() {
      yield* (yield* TenantEntity.client)(tenantId).Provision({ name: "Acme", plan: "pro" })
      const session = (yield* SessionEntity.client)(sessionEntityId(tenantId, SessionId.make("s1")))
      const userId = UserId.make("u1")
      yield* session.Open({ userId, channel: "web" })
      const sent: Array<RunId> = []
      for (const message of ["hello", "where is my order 1234?", "thanks"]) {
        sent.push((yield* session.Send({ message, userId, workflow: "echo" })).runId)
      }
      yield* runsSettled
      const before = yield* activationCount("Session")

      // Past the idle timeout (5 minutes) and the reaper's resolution, the entity is gone.
      yield* TestClock.adjust("6 minutes")
      const page = yield* session.History({})
      assert.strictEqual((yield* activationCount("Session")) - before, 1)
      assert.deepStrictEqual(page.entries.map((e) => e.content), ["hello", "where is my order 1234?", "thanks"])
      assert.deepStrictEqual(page.entries.map((e) => e.runId), sent)
      assert.deepStrictEqual(page.entries.map((e) => e.seq), [1, 2, 3])

      // The runs it started were journaled: the echo workflow's steps and completion.
      const runs = yield* RunEntity.handles
      const run = yield* runs(tenantId, page.entries[1]!.runId!).Status()
      assert.strictEqual(run.status, "completed")
      assert.deepStrictEqual(run.steps.map((s) => [s.stepId, s.status]), [["hold", "completed"], ["echo", "completed"]])
      assert.strictEqual((run.output as { answer: string }).answer, "where is my order 1234?")

      const db = yield* Database
      const events = yield* db.system(db.sql<{ subject: string }>`SELECT subject FROM outbox
        WHERE envelope->>'run_id' = ${sent[0]!} ORDER BY seq`)
      assert.deepStrictEqual(events.map((e) => e.subject), ["agent.run.requested", "agent.run.started", "agent.run.completed"])
    }).pipe(Effect.provide(Entities)))

  it.scoped("history pages back through Postgres beyond the in-memory window", () =>
    Effect.gen(function*() {
      yield* (yield* TenantEntity.client)(tenantId).Provision({ name: "Acme", plan: "pro" })
      const session = (yield* SessionEntity.client)(sessionEntityId(tenantId, SessionId.make("s2")))
      const userId = UserId.make("u2")
      yield* session.Open({ userId, channel: "api" })
      for (let i = 1; i <= 60; i++) yield* session.Send({ message: `m${i}`, userId, workflow: "echo" })
      yield* runsSettled
      const last = yield* session.History({ limit: 10 })
      assert.deepStrictEqual(last.entries.map((e) => e.content), Array.from({ length: 10 }, (_, i) => `m${51 + i}`))
      assert.strictEqual(last.nextBefore, 51)
      const older = yield* session.History({ before: 5, limit: 10 })
      assert.deepStrictEqual(older.entries.map((e) => e.seq), [1, 2, 3, 4])
      assert.strictEqual(older.nextBefore, null)
      const deep = yield* session.History({ before: 12, limit: 5 })
      assert.deepStrictEqual(deep.entries.map((e) => e.seq), [7, 8, 9, 10, 11])
    }).pipe(Effect.provide(Entities)))

  it.scoped("a closed session refuses messages; a missing one is not found", () =>
    Effect.gen(function*() {
      yield* (yield* TenantEntity.client)(tenantId).Provision({ name: "Acme", plan: "pro" })
      const sessions = yield* SessionEntity.client
      const userId = UserId.make("u3")
      const missing = yield* Effect.flip(sessions(sessionEntityId(tenantId, SessionId.make("nope"))).Send({ message: "hi", userId }))
      assert.strictEqual(missing._tag, "SessionNotFound")
      const session = sessions(sessionEntityId(tenantId, SessionId.make("s3")))
      yield* session.Open({ userId, channel: "web" })
      yield* session.Close()
      const closed = yield* Effect.flip(session.Send({ message: "hi", userId }))
      assert.strictEqual(closed._tag, "SessionClosed")
    }).pipe(Effect.provide(Entities)))
})

describe("Run", () => {
  it.scoped("a run cancelled mid-step stays cancelled, journals no step and frees its slot", () =>
    Effect.gen(function*() {
      const acme = (yield* TenantEntity.client)(tenantId)
      yield* acme.Provision({ name: "Acme", plan: "free" })
      const session = (yield* SessionEntity.client)(sessionEntityId(tenantId, SessionId.make("slow")))
      const userId = UserId.make("u4")
      yield* session.Open({ userId, channel: "api" })
      const { runId } = yield* session.Send({ message: "take your time", userId, workflow: "echo", context: { echo_delay_ms: 5_000 } })
      const run = (yield* RunEntity.handles)(tenantId, runId)

      const cancelled = yield* run.Cancel("customer left")
      assert.strictEqual(cancelled.status, "cancelled")
      assert.strictEqual(cancelled.error, "customer left")

      // The step's 5 s pass on the simulated clock: the interrupted step never lands.
      yield* TestClock.adjust("10 seconds")
      const after = yield* run.Status()
      assert.strictEqual(after.status, "cancelled")
      assert.strictEqual(after.steps.length, 0)

      const db = yield* Database
      const events = yield* db.system(db.sql<{ subject: string }>`SELECT subject FROM outbox
        WHERE envelope->>'run_id' = ${runId} ORDER BY seq`)
      assert.deepStrictEqual(events.map((e) => e.subject), ["agent.run.requested", "agent.run.cancelled"])

      // All of the free plan's concurrent runs are available again.
      const { maxConcurrentRuns } = (yield* acme.GetConfig()).plan.limits
      for (let i = 0; i < maxConcurrentRuns; i++) yield* acme.Admit({ startsRun: true })
    }).pipe(Effect.provide(Entities)))

  it.scoped("the recovery scan finishes a run whose start never arrived", () =>
    Effect.gen(function*() {
      yield* (yield* TenantEntity.client)(tenantId).Provision({ name: "Acme", plan: "pro" })
      const db = yield* Database
      // A run request committed by a runner that died before it sent Start.
      yield* db.tenant(tenantId)(db.sql`INSERT INTO agent_runs (tenant_id, id, workflow, status, input)
        VALUES (${tenantId}, 'orphan', 'echo', 'requested', ${JSON.stringify({ message: "still there?" })})`)

      const woken = yield* RunRecovery.scanOnce(Duration.zero)
      assert.strictEqual(woken, 1)
      yield* runsSettled
      const run = yield* (yield* RunEntity.handles)(tenantId, RunId.make("orphan")).Status()
      assert.strictEqual(run.status, "completed")
      assert.strictEqual((run.output as { answer: string }).answer, "still there?")
      assert.strictEqual(run.attempts, 1)
      assert.strictEqual(yield* RunRecovery.scanOnce(Duration.zero), 0)
    }).pipe(Effect.provide(Entities)))
})

describe("Tenant usage", () => {
  it.scoped("recorded usage is written in batches and survives passivation", () =>
    Effect.gen(function*() {
      const acme = (yield* TenantEntity.client)(tenantId)
      const { plan } = yield* acme.Provision({ name: "Acme", plan: "free" })
      yield* acme.RecordUsage({ tokens: plan.limits.tokensPerDay - 100, costUsd: 1.5 })
      const db = yield* Database
      const usage = db.tenant(tenantId)(db.sql<{ period: string; tokens: string; cost_usd: string }>`
        SELECT period, tokens, cost_usd FROM usage_counters ORDER BY period`)
      assert.deepStrictEqual(yield* usage, [])

      // One flush interval later the batch is in Postgres.
      yield* TestClock.adjust("1 second")
      const written = yield* usage.pipe(Effect.repeat({ until: (rows) => rows.length === 2 }))
      assert.deepStrictEqual(written.map((r) => [r.period, Number(r.tokens), Number(r.cost_usd)]), [
        ["day", plan.limits.tokensPerDay - 100, 1.5],
        ["month", plan.limits.tokensPerDay - 100, 1.5]
      ])

      // After passivation the entity reloads the day's usage: the quota still holds.
      const before = yield* activationCount("Tenant")
      yield* TestClock.adjust("11 minutes")
      const denied = yield* Effect.flip(acme.Admit({ estimatedTokens: 101 }))
      assert.strictEqual((yield* activationCount("Tenant")) - before, 1)
      assert.strictEqual(denied._tag === "QuotaExceeded" && denied.quota, "tokens_per_day")
      yield* acme.Admit({ estimatedTokens: 100 })
    }).pipe(Effect.provide(Entities)))
})
