/**
 * Three `tessera runner` processes on one machine form one cluster on one Postgres and one NATS.
 * One is killed with SIGKILL while runs are in flight; the survivors take its shards, the
 * recovery singleton wakes its runs, and every run completes exactly once.
 */
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import { RunId, SessionId, TenantId, UserId } from "@tessera/domain/Ids"
import { Database } from "@tessera/runtime/Database"
import { EventBus } from "@tessera/runtime/EventBus"
import * as NatsEventBus from "@tessera/runtime/NatsEventBus"
import { TesseraClient } from "@tessera/runtime/TesseraClient"
import * as ClusterRunner from "@tessera/runtime/ClusterRunner"
import * as TestDatabase from "@tessera/runtime/TestDatabase"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import { randomBytes } from "node:crypto"
import * as Runners from "../fixtures/Runners.js"

const natsUrl = process.env.NATS_URL ?? "nats://127.0.0.1:4222"
const prefix = `mn${randomBytes(4).toString("hex")}`

const spawnRunner = (name: string, databaseUrl: string) =>
  Runners.spawnRunner({
    name,
    databaseUrl,
    env: {
      NATS_URL: natsUrl,
      NATS_STREAM_PREFIX: prefix,
      RUN_RECOVERY_INTERVAL: "1 second",
      RUN_RECOVERY_STALE_AFTER: "6 seconds"
    }
  })

const unfinished = (tenantId: string) =>
  Effect.flatMap(Database, (db) =>
    db.tenant(tenantId)(db.sql<{ n: string }>`SELECT count(*) AS n FROM agent_runs WHERE status IN ('requested', 'started')`)
  ).pipe(Effect.map((rows) => Number(rows[0]?.n ?? 0)))

/** Completed-run events on the stream for the tenant, drained until a fetch comes back empty. */
const completedEvents = (tenantId: string) =>
  Effect.gen(function*() {
    const bus = yield* EventBus
    const durable = `count-${randomBytes(3).toString("hex")}`
    const seen: Array<string> = []
    while (true) {
      const batch = yield* bus.fetch({
        durable,
        subjects: ["agent.run.completed"],
        tenantId,
        max: 1000,
        expires: "2 seconds"
      })
      for (const delivery of batch) {
        seen.push(delivery.envelope.run_id ?? "")
        yield* delivery.ack
      }
      if (batch.length === 0) return seen
    }
  })

/** Retries whatever fails (a send to the dead runner fails until its shards move) within a bound. */
const eventually = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(
    Effect.sandbox,
    Effect.retry(Schedule.spaced("500 millis")),
    Effect.unsandbox,
    Effect.timeout("45 seconds")
  )

const TestLayers = Layer.mergeAll(
  TesseraClient.Default.pipe(Layer.provide(ClusterRunner.layerClient)),
  NatsEventBus.layer({ servers: natsUrl, prefix, deleteStreamOnClose: true })
).pipe(Layer.provideMerge(TestDatabase.layer))

describe("multi-node cluster", () => {
  it.live("three runners share the entities; a runner killed with SIGKILL loses no run and finishes none twice", () =>
    Effect.gen(function*() {
      const { url } = yield* TestDatabase.TestDatabaseUrl
      const runners = yield* Effect.forEach(["r1", "r2", "r3"], (name) => spawnRunner(name, url))
      yield* Effect.forEach(runners, Runners.readyz, { concurrency: "unbounded", discard: true })
      const sql = yield* SqlClient.SqlClient
      // All three registered and healthy in the cluster's runner table (a runner may be ready before its peers see it).
      const live = yield* sql<{ n: string }>`SELECT count(*) AS n FROM cluster_runners WHERE healthy`.pipe(
        Effect.map((rows) => Number(rows[0]?.n)),
        Effect.filterOrFail((n) => n === 3, (n) => `${n} healthy runners`),
        Effect.retry(Schedule.spaced("250 millis").pipe(Schedule.upTo("30 seconds"))),
        Effect.orElseSucceed(() => 0)
      )
      assert.strictEqual(live, 3)

      const tessera = yield* TesseraClient
      const tenantId = TenantId.make("multinode")
      yield* tessera.tenant(tenantId).Provision({ name: "Multi Node", plan: "enterprise" })
      const userId = UserId.make("u1")
      const sessionIds = Array.from({ length: 12 }, (_, i) => SessionId.make(`s${i}`))
      yield* Effect.forEach(sessionIds, (id) => tessera.session(tenantId, id).Open({ userId, channel: "api" }), {
        concurrency: 4,
        discard: true
      })

      const send = (count: number, delayMs: number) =>
        Effect.forEach(
          Array.from({ length: count }, (_, i) => sessionIds[i % sessionIds.length]!),
          (sessionId, i) =>
            tessera.session(tenantId, sessionId).Send({
              message: `message ${i}`,
              userId,
              workflow: "echo",
              context: { echo_delay_ms: delayMs }
            }).pipe(Effect.map((result) => result.runId)),
          { concurrency: 8 }
        )

      // Warm-up: quick runs land on every runner.
      const warm = yield* send(36, 0)
      yield* unfinished(tenantId).pipe(
        Effect.repeat({ until: (n) => n === 0, schedule: Schedule.spaced("200 millis") }),
        Effect.timeout("30 seconds")
      )
      const db = yield* Database
      const byRunner = yield* db.tenant(tenantId)(db.sql<{ runner: string; n: string }>`
        SELECT runner, count(*) AS n FROM agent_runs GROUP BY runner ORDER BY runner`)
      assert.deepStrictEqual(byRunner.map((r) => r.runner).sort(), runners.map((r) => r.address).sort())

      // Runs that take 4 s; kill a runner while they are in their step.
      const inFlight = yield* send(36, 4_000)
      const victim = runners[0]!
      yield* Effect.sleep("1 second")
      victim.process.kill("SIGKILL")
      const killedAt = Date.now()

      // Every entity answers again from the survivors within a bound.
      yield* Effect.forEach(sessionIds, (id) => eventually(tessera.session(tenantId, id).History({ limit: 5 })), {
        concurrency: "unbounded",
        discard: true
      })
      yield* eventually(tessera.tenant(tenantId).GetConfig())
      const answeredAfter = Duration.millis(Date.now() - killedAt)

      yield* unfinished(tenantId).pipe(
        Effect.repeat({ until: (n) => n === 0, schedule: Schedule.spaced("250 millis") }),
        Effect.timeout("60 seconds")
      )
      const finishedAfter = Duration.millis(Date.now() - killedAt)
      console.log(`failover: entities answered ${Duration.format(answeredAfter)}, runs finished ${Duration.format(finishedAfter)} after SIGKILL`)

      const all = [...warm, ...inFlight]
      const rows = yield* db.tenant(tenantId)(db.sql<{ id: RunId; status: string; runner: string; steps: string; finished_ms: string }>`
        SELECT r.id, r.status, r.runner, extract(epoch FROM r.finished_at) * 1000 AS finished_ms,
          (SELECT count(*) FROM run_steps s WHERE s.tenant_id = r.tenant_id AND s.run_id = r.id) AS steps
        FROM agent_runs r`)
      assert.strictEqual(rows.length, all.length, "no run lost")
      assert.deepStrictEqual(new Set(rows.map((r) => r.id)), new Set(all))
      // The echo workflow journals two steps: `hold` (the delay) and `echo`.
      assert.isTrue(rows.every((r) => r.status === "completed" && Number(r.steps) === 2), "every run completed with its two steps")
      const recovered = rows.filter((r) => inFlight.includes(r.id) && Number(r.finished_ms) > killedAt)
      assert.isAbove(recovered.length, 0, "runs were still in flight when the runner died")

      // Exactly one completion event per run on JetStream.
      const events = yield* completedEvents(tenantId)
      assert.strictEqual(events.length, all.length, "one agent.run.completed per run")
      assert.strictEqual(new Set(events).size, all.length, "no run completed twice")

      // The killed runner's in-flight runs were woken by the recovery singleton on a survivor.
      const survivorsOutput = runners.slice(1).map((r) => r.output()).join("\n")
      assert.match(survivorsOutput, /recovery woke \d+ unfinished run/)
    }).pipe(Effect.provide(TestLayers), Effect.scoped), { timeout: 240_000 })
})
