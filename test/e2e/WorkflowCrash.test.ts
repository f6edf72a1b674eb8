/**
 * Two runner processes on one Postgres. A create_order run is killed (SIGKILL of the runner
 * executing it) after it reserved the order and charged the card; the survivor's recovery scan
 * wakes it, the journal replays, and it completes there. The payment ledger shows exactly one
 * charge, the order is confirmed once, one email is queued.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import { RunId, TenantId } from "@tessera/domain/Ids"
import * as RunEntity from "@tessera/domain/RunEntity"
import { TenantEntity } from "@tessera/domain/TenantEntity"
import * as ClusterRunner from "@tessera/runtime/ClusterRunner"
import { Database } from "@tessera/runtime/Database"
import * as TestDatabase from "@tessera/runtime/TestDatabase"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Runners from "../fixtures/Runners.js"
import { createOrderWithPause } from "../fixtures/WorkflowPlans.js"

const spawnRunner = (databaseUrl: string) =>
  Runners.spawnRunner({
    name: "workflow-runner",
    databaseUrl,
    argv: ["test/fixtures/WorkflowRunner.ts"],
    env: { RUN_RECOVERY_INTERVAL: "1 second", RUN_RECOVERY_STALE_AFTER: "3 seconds" }
  })

const TestLayers = ClusterRunner.layerClient.pipe(Layer.provideMerge(TestDatabase.layer))

const tenantId = TenantId.make("crash")

describe("workflow crash recovery", () => {
  it.live("a create_order run whose runner is SIGKILLed after the charge completes on the survivor, charging once", () =>
    Effect.gen(function*() {
      const { url } = yield* TestDatabase.TestDatabaseUrl
      const runners = yield* Effect.forEach([1, 2], () => spawnRunner(url))
      const sql = yield* SqlClient.SqlClient
      yield* sql<{ n: string }>`SELECT count(*) AS n FROM cluster_runners WHERE healthy`.pipe(
        Effect.map((rows) => Number(rows[0]?.n)),
        Effect.filterOrFail((n) => n === 2, (n) => `${n} healthy runners`),
        Effect.retry(Schedule.spaced("250 millis").pipe(Schedule.upTo("60 seconds"))),
        Effect.tapError(() => Effect.sync(() => console.error(runners.map((r) => r.output()).join("\n---\n"))))
      )

      yield* Effect.flatMap(TenantEntity.client, (tenants) => tenants(tenantId).Provision({ name: "Crash", plan: "enterprise" })).pipe(
        Effect.retry(Schedule.spaced("500 millis").pipe(Schedule.upTo("30 seconds")))
      )
      const db = yield* Database
      const runId = RunId.make("run_crash")
      const input = { email: "kim@example.com", items: [{ sku: "LAMP", quantity: 1, unit_price_cents: 4900 }], settle_ms: 8_000 }
      yield* db.tenant(tenantId)(db.sql`INSERT INTO agent_runs (tenant_id, id, workflow, status, input)
        VALUES (${tenantId}, ${runId}, ${createOrderWithPause.name}, 'requested', ${JSON.stringify(input)})`)
      yield* Effect.flatMap(RunEntity.handles, (runs) => runs(tenantId, runId).Start())

      // The run has charged and is pausing in `settle`: kill the runner executing it.
      const charged = yield* db.tenant(tenantId)(db.sql<{ runner: string }>`SELECT r.runner FROM agent_runs r
        JOIN run_steps s ON s.tenant_id = r.tenant_id AND s.run_id = r.id AND s.step_id = 'charge'
        WHERE r.id = ${runId}`).pipe(
        Effect.filterOrFail((rows) => rows.length === 1, () => "not charged yet"),
        Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo("30 seconds")))
      )
      const victim = runners.find((r) => r.address === charged[0]!.runner)
      assert.isDefined(victim, `the run's runner ${charged[0]!.runner} is one of ours`)
      victim!.process.kill("SIGKILL")
      const killedAt = Date.now()

      const finished = yield* db.tenant(tenantId)(db.sql<{ status: string; runner: string; attempts: number; output: { answer: string } }>`
        SELECT status, runner, attempts, output FROM agent_runs WHERE id = ${runId}`).pipe(
        Effect.filterOrFail((rows) => rows[0]?.status === "completed", (rows) => `run is ${rows[0]?.status}`),
        Effect.retry(Schedule.spaced("250 millis").pipe(Schedule.upTo("90 seconds"))),
        Effect.tapError(() => Effect.sync(() => console.error(runners.map((r) => r.output()).join("\n---\n"))))
      )
      console.log(`crash: run completed ${Date.now() - killedAt} ms after SIGKILL`)
      const run = finished[0]!
      assert.notStrictEqual(run.runner, victim!.address, "the survivor finished it")
      assert.strictEqual(run.attempts, 2, "one activation before the crash, one after")
      assert.match(run.output.answer, /^Order ord_[0-9a-f]+ is confirmed\.$/)

      const steps = yield* db.tenant(tenantId)(db.sql<{ step_id: string }>`SELECT step_id FROM run_steps WHERE run_id = ${runId} ORDER BY seq`)
      assert.deepStrictEqual(steps.map((s) => s.step_id), ["reserve", "charge", "settle", "confirm", "email", "done"])
      const charges = yield* db.tenant(tenantId)(db.sql<{ amount_cents: string; status: string }>`SELECT amount_cents, status FROM payment_charges`)
      assert.deepStrictEqual(charges.map((c) => [Number(c.amount_cents), c.status]), [[4900, "succeeded"]], "exactly one charge")
      const balance = yield* db.tenant(tenantId)(db.sql<{ available_cents: string }>`SELECT available_cents FROM payment_balances`)
      assert.strictEqual(Number(balance[0]?.available_cents), 4900)
      const orders = yield* db.tenant(tenantId)(db.sql<{ status: string }>`SELECT status FROM orders`)
      assert.deepStrictEqual(orders.map((o) => o.status), ["confirmed"])
      const emails = yield* db.tenant(tenantId)(db.sql<{ n: string }>`SELECT count(*) AS n FROM email_outbox`)
      assert.strictEqual(Number(emails[0]?.n), 1)
      const charged1 = yield* db.system(db.sql<{ n: string }>`SELECT count(*) AS n FROM outbox
        WHERE envelope->>'run_id' = ${runId} AND subject = 'tool.call.succeeded' AND envelope->'payload'->>'tool' = 'payments.charge'`)
      assert.strictEqual(Number(charged1[0]?.n), 1, "one tool.call.succeeded for the charge")

      const survivor = runners.find((r) => r !== victim)!
      assert.match(survivor.output(), /recovery woke \d+ unfinished run/)
    }).pipe(Effect.provide(TestLayers), Effect.scoped), { timeout: 180_000 })
})
