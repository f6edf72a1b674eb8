/**
 * The shipped workflows (`workflows/`, through WorkflowRegistry, as a node loads them) run end to
 * end on the Run entity, the real Postgres and the real tools. Workflows that need a model fail,
 * on a node without an LLM gateway, with the error naming the missing gateway — never an invented
 * answer.
 */
import { TestRunner } from "@effect/cluster"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { assert, describe, it } from "@effect/vitest"
import { RunId, TenantId } from "@tessera/domain/Ids"
import * as RunEntity from "@tessera/domain/RunEntity"
import { TenantEntity } from "@tessera/domain/TenantEntity"
import { Database } from "@tessera/runtime/Database"
import * as KnowledgeStore from "@tessera/runtime/KnowledgeStore"
import * as LlmGatewayLive from "@tessera/runtime/LlmGatewayLive"
import * as LocalEmbedder from "@tessera/runtime/LocalEmbedder"
import * as PgVectorStore from "@tessera/runtime/PgVectorStore"
import * as RunEntityLive from "@tessera/runtime/RunEntity"
import * as TenantEntityLive from "@tessera/runtime/TenantEntity"
import * as TestDatabase from "@tessera/runtime/TestDatabase"
import * as ToolRegistry from "@tessera/runtime/ToolRegistry"
import * as WorkflowRegistry from "@tessera/runtime/WorkflowRegistry"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as TestClock from "effect/TestClock"

const Workflows = Layer.mergeAll(
  ToolRegistry.layer,
  WorkflowRegistry.plans.pipe(Layer.provide(WorkflowRegistry.layer({ dir: WorkflowRegistry.defaultDir })), Layer.provide(NodeContext.layer))
).pipe(
  Layer.provideMerge(KnowledgeStore.layer),
  Layer.provide(PgVectorStore.layer),
  Layer.provide(LocalEmbedder.layer),
  Layer.orDie
)

const Cluster = Layer.mergeAll(TenantEntityLive.layer, RunEntityLive.layer).pipe(
  Layer.provideMerge(Workflows),
  Layer.provideMerge(TestRunner.layer),
  Layer.provideMerge(TestDatabase.layer),
  (layer) => Layer.provideMerge(Layer.effectDiscard(TestClock.adjust("5 seconds")), layer)
)

/** The same node with the built-in local model behind the LLM gateway. */
const ClusterWithModel = Layer.mergeAll(TenantEntityLive.layer, RunEntityLive.layer).pipe(
  Layer.provideMerge(Workflows),
  Layer.provideMerge(LlmGatewayLive.layerLocal),
  Layer.provideMerge(TestRunner.layer),
  Layer.provideMerge(TestDatabase.layer),
  (layer) => Layer.provideMerge(Layer.effectDiscard(TestClock.adjust("5 seconds")), layer)
)

const tenantId = TenantId.make("shipped")
let counter = 0

const run = (workflow: string, message: string, context: Record<string, unknown> = {}) =>
  Effect.gen(function*() {
    const db = yield* Database
    yield* (yield* TenantEntity.client)(tenantId).Provision({ name: "Shipped", plan: "enterprise" }).pipe(Effect.ignore)
    const runId = RunId.make(`wf_${++counter}`)
    yield* db.tenant(tenantId)(db.sql`INSERT INTO agent_runs (tenant_id, id, workflow, status, input)
      VALUES (${tenantId}, ${runId}, ${workflow}, 'requested', ${JSON.stringify({ message, context })})`)
    const entity = (yield* RunEntity.handles)(tenantId, runId)
    yield* entity.Start()
    yield* db.tenant(tenantId)(db.sql<{ status: string }>`SELECT status FROM agent_runs WHERE id = ${runId}`).pipe(
      Effect.repeat({ until: (rows) => rows[0]?.status !== "requested" && rows[0]?.status !== "started" })
    )
    return yield* entity.Status()
  })

const rows = <A extends object>(query: (sql: Database["sql"]) => Effect.Effect<ReadonlyArray<A>, unknown>) =>
  Effect.flatMap(Database, (db) => db.tenant(tenantId)(query(db.sql)))

interface AnswerOutput {
  readonly answer: string
  readonly escalated: boolean
  readonly workflow: string
  readonly citations: ReadonlyArray<{ readonly sourceKey: string }>
}

describe("shipped workflows", () => {
  it.scoped("create_order reserves, charges, confirms and emails; its answer says so", () =>
    Effect.gen(function*() {
      const done = yield* run("create_order", "I'd like two mugs", {
        customer_email: "ann@example.com",
        items: [{ sku: "MUG", name: "Mug", quantity: 2, unit_price_cents: 1250 }]
      })
      assert.strictEqual(done.status, "completed", done.error ?? "")
      const output = done.output as AnswerOutput
      assert.match(output.answer, /^Your order ord_[0-9a-f]+ is confirmed and 25 USD was charged\./)
      assert.strictEqual(output.workflow, "create_order")
      const orders = yield* rows((sql) => sql<{ status: string }>`SELECT status FROM orders`)
      assert.deepStrictEqual(orders.map((o) => o.status), ["confirmed"])
      const charges = yield* rows((sql) => sql<{ amount_cents: string }>`SELECT amount_cents FROM payment_charges`)
      assert.deepStrictEqual(charges.map((c) => Number(c.amount_cents)), [2500])
      const mails = yield* rows((sql) => sql<{ recipient: string; template: string }>`SELECT recipient, template FROM email_outbox`)
      assert.deepStrictEqual(mails.map((m) => [m.recipient, m.template]), [["ann@example.com", "order_confirmation"]])
    }).pipe(Effect.provide(Cluster)))

  it.scoped("create_order: an email that cannot be sent refunds the charge and cancels the order; events show the failure, then the compensations", () =>
    Effect.gen(function*() {
      const done = yield* run("create_order", "one lamp please", {
        customer_email: "bob@example.invalid",
        items: [{ sku: "LAMP", quantity: 1, unit_price_cents: 4900 }]
      })
      assert.strictEqual(done.status, "compensated")
      assert.match(done.error ?? "", /notify\.email failed: recipient bob@example\.invalid/)
      // The email step's own retries (3, exponential from 1 s) are not spent on a failure that cannot succeed.
      assert.deepStrictEqual(done.steps.map((s) => [s.stepId, s.status]), [
        ["reserve", "completed"],
        ["charge", "completed"],
        ["confirm", "completed"],
        ["email", "failed"],
        ["compensate:charge", "completed"],
        ["compensate:reserve", "completed"]
      ])
      const charges = yield* rows((sql) => sql<{ status: string; refunded_cents: string }>`SELECT status, refunded_cents FROM payment_charges`)
      assert.deepStrictEqual(charges.map((c) => [c.status, Number(c.refunded_cents)]), [["refunded", 4900]])
      const orders = yield* rows((sql) => sql<{ status: string }>`SELECT status FROM orders`)
      assert.deepStrictEqual(orders.map((o) => o.status), ["cancelled"])
      const db = yield* Database
      const events = yield* db.system(db.sql<{ subject: string; step: string | null }>`
        SELECT subject, envelope->'payload'->>'step' AS step FROM outbox
        WHERE envelope->>'run_id' = ${done.id} AND subject IN ('tool.call.failed', 'tool.call.succeeded', 'agent.run.failed')
        ORDER BY seq`)
      assert.deepStrictEqual(events.slice(-4).map((e) => [e.subject, e.step]), [
        ["tool.call.failed", "email"],
        ["tool.call.succeeded", "compensate:charge"],
        ["tool.call.succeeded", "compensate:reserve"],
        ["agent.run.failed", null]
      ])
    }).pipe(Effect.provide(Cluster)))

  it.scoped("complaint_handling escalates a ticket to the human queue and acknowledges by email", () =>
    Effect.gen(function*() {
      const done = yield* run("complaint_handling", "My parcel arrived broken", { customer_email: "cy@example.com" })
      assert.strictEqual(done.status, "completed", done.error ?? "")
      const output = done.output as AnswerOutput
      assert.isTrue(output.escalated)
      const tickets = yield* rows((sql) => sql<{ id: string; status: string; queue: string; priority: string }>`SELECT id, status, queue, priority FROM tickets`)
      assert.deepStrictEqual(tickets.map((t) => [t.status, t.queue, t.priority]), [["escalated", "human", "high"]])
      assert.include(output.answer, tickets[0]!.id)
      const mails = yield* rows((sql) => sql<{ subject: string }>`SELECT subject FROM email_outbox`)
      assert.deepStrictEqual(mails.map((m) => m.subject), [`We received your complaint (${tickets[0]!.id})`])
    }).pipe(Effect.provide(Cluster)))

  it.scoped("payment_issue searches the knowledge base, opens a billing ticket and cites the policy", () =>
    Effect.gen(function*() {
      const store = yield* KnowledgeStore.KnowledgeStore
      yield* store.add(tenantId, {
        sourceKey: "billing.md",
        title: "Billing",
        format: "markdown",
        content: "# Double charges\n\nIf a payment was charged twice, the duplicate payment is refunded automatically within 5 business days.",
        tags: [],
        metadata: {}
      })
      const done = yield* run("payment_issue", "I was charged twice for my payment", { customer_email: "dee@example.com" })
      assert.strictEqual(done.status, "completed", done.error ?? "")
      const output = done.output as AnswerOutput
      assert.match(output.answer, /^Our billing team is checking this \(ticket tkt_[0-9a-f]+\)\./)
      const tickets = yield* rows((sql) => sql<{ category: string; customer_email: string }>`SELECT category, customer_email FROM tickets`)
      assert.deepStrictEqual(tickets.map((t) => [t.category, t.customer_email]), [["billing", "dee@example.com"]])
      if (output.answer.includes("Meanwhile")) assert.deepStrictEqual(output.citations.map((c) => c.sourceKey), ["billing.md"])
    }).pipe(Effect.provide(Cluster)))

  it.scoped("workflows that need a model fail clearly on a node without an LLM gateway", () =>
    Effect.gen(function*() {
      for (const workflow of ["customer_support", "track_order", "cancel_order"]) {
        const done = yield* run(workflow, "where is my order 1234?")
        assert.strictEqual(done.status, "failed", workflow)
        assert.match(done.error ?? "", /^llm_gateway_missing: step \S+ \((llm|route)\) needs the LLM gateway/, workflow)
        assert.isNull(done.output)
      }
    }).pipe(Effect.provide(Cluster)))

  it.scoped("with the local model, every shipped workflow that needs one runs to an answer", () =>
    Effect.gen(function*() {
      const store = yield* KnowledgeStore.KnowledgeStore
      yield* store.add(tenantId, {
        sourceKey: "returns.md",
        title: "Returns",
        format: "markdown",
        content: "# Returns\n\nYou can return any item within 30 days of delivery for a full refund. Start a return from your account page.",
        tags: [],
        metadata: {}
      })
      const answered = (workflow: string, message: string) =>
        Effect.map(run(workflow, message), (done) => {
          assert.strictEqual(done.status, "completed", `${workflow}: ${done.error}`)
          return done.output as AnswerOutput
        })

      // customer_support classifies the intent and routes to the FAQ, which answers from the knowledge base.
      const support = yield* answered("customer_support", "How many days do I have to return an item?")
      assert.strictEqual(support.workflow, "customer_support > faq_handling")
      assert.include(support.answer, "30 days")
      assert.deepStrictEqual(support.citations.map((c) => c.sourceKey), ["returns.md"])
      const faq = yield* answered("faq_handling", "How many days do I have to return an item?")
      assert.include(faq.answer, "30 days")

      // order_management routes to track_order, which asks for the number it could not find.
      const orders = yield* answered("order_management", "Where is my order?")
      assert.strictEqual(orders.workflow, "order_management > track_order")
      assert.match(orders.answer, /^Which order do you mean\?/)
      assert.match((yield* answered("track_order", "Where is my order?")).answer, /^Which order do you mean\?/)
      assert.match((yield* answered("cancel_order", "Please cancel my order")).answer, /^I could not cancel that order/)

      const lead = yield* answered("lead_capture", "We are Initech and need a quote for 40 seats, I am bo@initech.com")
      assert.include(lead.answer, "bo@initech.com")
      const leads = yield* rows((sql) => sql<{ email: string }>`SELECT email FROM leads`)
      assert.deepStrictEqual(leads.map((l) => l.email), ["bo@initech.com"])

      const tech = yield* answered("technical_support", "The app crashes when I log in")
      assert.isTrue(tech.escalated)
      const tickets = yield* rows((sql) => sql<{ id: string }>`SELECT id FROM tickets WHERE category <> 'billing'`)
      assert.include(tech.answer, tickets[0]!.id)
    }).pipe(Effect.provide(ClusterWithModel)))
})
