/**
 * YAML → WorkflowLoader → WorkflowCompiler → executor, through the Run entity on the real
 * Postgres and tools: templates, expressions, retry blocks, on_error and compensation as a
 * workflow author writes them.
 */
import { TestRunner } from "@effect/cluster"
import { assert, describe, it } from "@effect/vitest"
import { RunId, TenantId } from "@tessera/domain/Ids"
import * as RunEntity from "@tessera/domain/RunEntity"
import { TenantEntity } from "@tessera/domain/TenantEntity"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as TestClock from "effect/TestClock"
import { Database } from "../src/Database.js"
import * as KnowledgeStore from "../src/KnowledgeStore.js"
import * as LocalEmbedder from "../src/LocalEmbedder.js"
import * as PgVectorStore from "../src/PgVectorStore.js"
import * as RunEntityLive from "../src/RunEntity.js"
import * as TenantEntityLive from "../src/TenantEntity.js"
import * as TestDatabase from "../src/TestDatabase.js"
import * as ToolRegistry from "../src/ToolRegistry.js"
import * as WorkflowCompiler from "../src/WorkflowCompiler.js"
import * as WorkflowLoader from "../src/WorkflowLoader.js"
import * as WorkflowPlans from "../src/WorkflowPlans.js"

const createOrder = `
name: create_order
description: Reserve, charge, confirm and email; a failure after the charge refunds and releases.
budgets:
  wall_ms: 60000
steps:
  - id: reserve
    kind: tool
    tool: orders.create
    input:
      customer_email: "{{ input.email }}"
      items: "{{ input.items }}"
    retry: { times: 2, backoff: exponential, base: 200, max: "2 seconds", jitter: 0.1 }
    next: charge
  - id: charge
    kind: tool
    tool: payments.charge
    input:
      amount_cents: "{{ steps.reserve.total_cents }}"
      customer: "{{ input.email }}"
      order_id: "{{ steps.reserve.order_id }}"
    compensate:
      tool: payments.refund
      input:
        charge_id: "{{ steps.charge.charge_id }}"
        reason: order could not be completed
    next: confirm
  - id: confirm
    kind: tool
    tool: orders.modify
    input:
      order_id: "{{ steps.reserve.order_id }}"
      confirm: true
    next: email
  - id: email
    kind: tool
    tool: notify.email
    input:
      to: "{{ input.email }}"
      subject: "Order {{ steps.reserve.order_id }} confirmed"
      body: "Total: {{ steps.reserve.total_cents / 100 }} {{ steps.reserve.currency }}"
    next: big
  - id: big
    kind: branch
    branches:
      - when: steps.reserve.total_cents >= 10000
        next: thanks_big
    default: thanks
  - id: thanks_big
    kind: respond
    answer: "Thank you for your large order {{ steps.reserve.order_id }}."
  - id: thanks
    kind: respond
    answer: "Order {{ steps.reserve.order_id }} is confirmed; a confirmation went to {{ input.email }}."
`

/** A loop bounded by max_visits (a lookup repeated until it gives up), and a run cap (max_steps). */
const lookups = (name: string, maxVisits: number, maxSteps: number) => `
name: ${name}
max_steps: ${maxSteps}
steps:
  - id: look
    kind: tool
    tool: leads.find_duplicate
    input: { email: "{{ input.email }}" }
    max_visits: ${maxVisits}
    on_error: fallback:gave_up
    next: again
  - id: again
    kind: branch
    branches:
      - { when: "!steps.look.duplicate", next: look }
    default: found
  - id: found
    kind: respond
    answer: known lead
  - id: gave_up
    kind: respond
    answer: "gave up: {{ steps.look.error }}"
`

const loaded = WorkflowLoader.load([
  { file: "create_order.yaml", text: createOrder },
  { file: "lookups.yaml", text: lookups("lookups", 3, 50) },
  { file: "capped.yaml", text: lookups("capped", 10, 4) }
])

const Cluster = Layer.mergeAll(TenantEntityLive.layer, RunEntityLive.layer).pipe(
  Layer.provideMerge(Layer.mergeAll(
    ToolRegistry.layer.pipe(Layer.provide(KnowledgeStore.layer), Layer.provide(PgVectorStore.layer), Layer.provide(LocalEmbedder.layer)),
    WorkflowPlans.layerWorkflows([...loaded.workflows.values()])
  ).pipe(Layer.orDie)),
  Layer.provideMerge(TestRunner.layer),
  Layer.provideMerge(TestDatabase.layer),
  (layer) => Layer.provideMerge(Layer.effectDiscard(TestClock.adjust("5 seconds")), layer)
)

const tenantId = TenantId.make("yaml")
let counter = 0

const run = (input: Record<string, unknown>, workflow = "create_order") =>
  Effect.gen(function*() {
    const db = yield* Database
    yield* (yield* TenantEntity.client)(tenantId).Provision({ name: "Yaml", plan: "enterprise" }).pipe(Effect.ignore)
    const runId = RunId.make(`yaml_${++counter}`)
    yield* db.tenant(tenantId)(db.sql`INSERT INTO agent_runs (tenant_id, id, workflow, status, input)
      VALUES (${tenantId}, ${runId}, ${workflow}, 'requested', ${JSON.stringify({ ...input, context: {} })})`)
    const entity = (yield* RunEntity.handles)(tenantId, runId)
    yield* entity.Start()
    yield* db.tenant(tenantId)(db.sql<{ status: string }>`SELECT status FROM agent_runs WHERE id = ${runId}`).pipe(
      Effect.repeat({ until: (rows) => rows[0]?.status !== "requested" && rows[0]?.status !== "started" })
    )
    return yield* entity.Status()
  })

describe("WorkflowCompiler", () => {
  it("compiles what the loader validated: durations, retry blocks, on_error, budgets", () => {
    assert.deepStrictEqual(loaded.diagnostics, [])
    const plan = WorkflowCompiler.compile(loaded.workflows.get("create_order")!)
    assert.isTrue(Either.isRight(plan))
    if (Either.isRight(plan)) {
      assert.strictEqual(plan.right.start, "reserve")
      assert.strictEqual(plan.right.budgets.wallMs, 60_000)
      const reserve = plan.right.steps.get("reserve")!
      assert.deepStrictEqual(reserve.retry, {
        times: 2,
        backoff: "exponential",
        base: Duration.millis(200),
        max: Duration.seconds(2),
        jitter: 0.1
      })
      assert.deepStrictEqual(reserve.onError, { _tag: "Fail" })
      assert.strictEqual(plan.right.steps.get("charge")!.compensate?.tool, "payments.refund")
    }
  })

  it.scoped("a YAML create_order runs end to end: templates render typed values, the branch picks the answer", () =>
    Effect.gen(function*() {
      const done = yield* run({ email: "ann@example.com", items: [{ sku: "MUG", quantity: 3, unit_price_cents: 1250 }] })
      assert.strictEqual(done.status, "completed")
      assert.deepStrictEqual(done.steps.map((s) => s.stepId), ["reserve", "charge", "confirm", "email", "big", "thanks"])
      const answer = (done.output as { answer: string }).answer
      assert.match(answer, /^Order ord_[0-9a-f]+ is confirmed; a confirmation went to ann@example\.com\.$/)
      const db = yield* Database
      const mails = yield* db.tenant(tenantId)(db.sql<{ subject: string; body: string }>`SELECT subject, body FROM email_outbox`)
      assert.match(mails[0]!.subject, /^Order ord_[0-9a-f]+ confirmed$/)
      assert.strictEqual(mails[0]!.body, "Total: 37.5 USD")
    }).pipe(Effect.provide(Cluster)))

  it.scoped("a failure at the email step runs the YAML compensation (refund) and the tool default (release)", () =>
    Effect.gen(function*() {
      const done = yield* run({ email: "zed@example.invalid", items: [{ sku: "TV", quantity: 1, unit_price_cents: 50000 }] })
      assert.strictEqual(done.status, "compensated", `${done.error} ${JSON.stringify(done.steps.map((s) => [s.stepId, s.output]))}`)
      assert.deepStrictEqual(done.steps.map((s) => [s.stepId, s.status]), [
        ["reserve", "completed"],
        ["charge", "completed"],
        ["confirm", "completed"],
        ["email", "failed"],
        ["compensate:charge", "completed"],
        ["compensate:reserve", "completed"]
      ])
      const db = yield* Database
      const refunds = yield* db.tenant(tenantId)(db.sql<{ amount_cents: string; reason: string }>`SELECT amount_cents, reason FROM payment_refunds`)
      assert.deepStrictEqual(refunds.map((r) => [Number(r.amount_cents), r.reason]), [[50000, "order could not be completed"]])
      const orders = yield* db.tenant(tenantId)(db.sql<{ status: string }>`SELECT status FROM orders WHERE customer_email = 'zed@example.invalid'`)
      assert.deepStrictEqual(orders.map((o) => o.status), ["cancelled"])
    }).pipe(Effect.provide(Cluster)))
  it.layer(Cluster, { timeout: 120_000 })("loop bounds", (it) => {
    it.effect("max_visits fails the step past its bound and on_error takes over; max_steps caps the run", () =>
      Effect.gen(function*() {
        const bounded = yield* run({ email: "nobody@example.com" }, "lookups")
        assert.strictEqual(bounded.status, "completed")
        assert.deepStrictEqual(bounded.steps.map((s) => `${s.stepId}:${s.status}`), [
          "look:completed", "again:completed", "look#2:completed", "again#2:completed", "look#3:completed",
          "again#3:completed", "look#4:failed", "gave_up:completed"
        ])
        assert.include(JSON.stringify(bounded.output), "executed more than its max_visits (3) times")

        const capped = yield* run({ email: "nobody@example.com" }, "capped")
        assert.strictEqual(capped.status, "failed")
        assert.include(capped.error ?? "", "more than 4 steps")
        assert.strictEqual(capped.steps.length, 4)
      }))
  })
})
