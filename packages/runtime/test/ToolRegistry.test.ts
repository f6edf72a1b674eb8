import { assert, describe, it } from "@effect/vitest"
import { TenantId } from "@tessera/domain/Ids"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as TestServices from "effect/TestServices"
import * as http from "node:http"
import { Database } from "../src/Database.js"
import { sign, signatureHeader } from "../src/HttpTool.js"
import * as KnowledgeStore from "../src/KnowledgeStore.js"
import * as LocalEmbedder from "../src/LocalEmbedder.js"
import * as PgVectorStore from "../src/PgVectorStore.js"
import * as TestDatabase from "../src/TestDatabase.js"
import { ToolRegistry, layer as toolsLayer } from "../src/ToolRegistry.js"

const Tools = toolsLayer.pipe(
  Layer.provideMerge(KnowledgeStore.layer),
  Layer.provide(PgVectorStore.layer),
  Layer.provide(LocalEmbedder.layer),
  Layer.provideMerge(TestDatabase.layer),
  Layer.orDie
)

const acme = "acme"
const globex = "globex"

const provision = Effect.gen(function*() {
  const db = yield* Database
  for (const t of [acme, globex]) {
    yield* db.tenant(t)(db.sql`INSERT INTO tenants (tenant_id, name, plan, limits) VALUES (${t}, ${t}, 'pro', '{}')
      ON CONFLICT DO NOTHING`)
  }
})

const ctx = (stepId: string, tenantId = acme, runId = "run1") => ({ tenantId, runId, stepId, sessionId: null, attempt: 1 })

const rows = <A extends object>(tenantId: string, query: (sql: Database["sql"]) => Effect.Effect<ReadonlyArray<A>, unknown>) =>
  Effect.flatMap(Database, (db) => db.tenant(tenantId)(query(db.sql))).pipe(Effect.orDie)

describe("ToolRegistry", () => {
  it.layer(Tools, { timeout: 60_000 })((it) => {
    it.effect("orders: create reserves once per idempotency key; get, track, confirm and cancel act on the rows", () =>
      Effect.gen(function*() {
        yield* provision
        const tools = yield* ToolRegistry
        const input = {
          customer_email: "ann@example.com",
          items: [{ sku: "MUG", quantity: 2, unit_price_cents: 1250 }, { sku: "TEA", name: "Green tea", quantity: 1, unit_price_cents: 800 }]
        }
        const first = yield* tools.call("orders.create", input, ctx("reserve"))
        const again = yield* tools.call("orders.create", input, ctx("reserve"))
        assert.deepStrictEqual(first.output, again.output)
        assert.isFalse(first.replayed)
        assert.isTrue(again.replayed)
        const created = first.output as { order_id: string; total_cents: number; status: string }
        assert.strictEqual(created.total_cents, 3300)
        assert.strictEqual(created.status, "reserved")

        const orders = yield* rows(acme, (sql) => sql<{ id: string; status: string; total_cents: string }>`SELECT id, status, total_cents FROM orders`)
        assert.deepStrictEqual(orders.map((o) => [o.id, o.status, Number(o.total_cents)]), [[created.order_id, "reserved", 3300]])
        const items = yield* rows(acme, (sql) => sql<{ sku: string; name: string }>`SELECT sku, name FROM order_items ORDER BY line`)
        assert.deepStrictEqual(items.map((i) => [i.sku, i.name]), [["MUG", "MUG"], ["TEA", "Green tea"]])

        const got = (yield* tools.call("orders.get", { order_id: created.order_id }, ctx("get"))).output as { items: ReadonlyArray<unknown> }
        assert.strictEqual(got.items.length, 2)
        yield* tools.call("orders.modify", { order_id: created.order_id, confirm: true }, ctx("confirm"))
        const tracked = yield* tools.call("orders.track", { order_id: created.order_id }, ctx("track"))
        assert.deepStrictEqual(tracked.output, { order_id: created.order_id, status: "confirmed", fulfillment: "pending", tracking_number: null })

        const cancelled = yield* tools.call("orders.cancel", { order_id: created.order_id, reason: "changed mind" }, ctx("cancel"))
        assert.deepStrictEqual(cancelled.output, { order_id: created.order_id, status: "cancelled", previous_status: "confirmed" })

        // Another tenant does not see the order at all.
        const hidden = yield* Effect.flip(tools.call("orders.get", { order_id: created.order_id }, ctx("get", globex)))
        assert.strictEqual(hidden._tag, "ToolFailed")
        assert.match(hidden.message, /does not exist/)
      }))

    it.effect("input errors are typed and name the field", () =>
      Effect.gen(function*() {
        yield* provision
        const tools = yield* ToolRegistry
        const bad = yield* Effect.flip(tools.call("orders.create", {
          customer_email: "ann@example.com",
          items: [{ sku: "MUG", quantity: 0, unit_price_cents: 100 }]
        }, ctx("bad")))
        assert.strictEqual(bad._tag, "ToolInputInvalid")
        if (bad._tag === "ToolInputInvalid") {
          assert.strictEqual(bad.field, "items.0.quantity")
          assert.strictEqual(bad.code, "tool_input_invalid")
          assert.match(bad.message, /^orders\.create: input field items\.0\.quantity: /)
        }
        const email = yield* Effect.flip(tools.call("notify.email", { to: "nobody", subject: "x", body: "y" }, ctx("mail")))
        assert.strictEqual(email._tag === "ToolInputInvalid" && email.field, "to")
        const unknown = yield* Effect.flip(tools.call("orders.teleport", {}, ctx("x")))
        assert.strictEqual(unknown._tag, "ToolNotFound")
        assert.deepStrictEqual(yield* rows(acme, (sql) => sql`SELECT 1 FROM email_outbox`), [])
      }))

    it.effect("payments: a replayed charge moves money once; refunds restore the balance; declines are final", () =>
      Effect.gen(function*() {
        yield* provision
        const tools = yield* ToolRegistry
        const charge = { amount_cents: 4200, currency: "EUR", customer: "cus_1", order_id: "ord_1" }
        const first = yield* tools.call("payments.charge", charge, ctx("charge", acme, "run_pay"))
        const replay = yield* tools.call("payments.charge", charge, ctx("charge", acme, "run_pay"))
        assert.deepStrictEqual(first.output, replay.output)
        const charges = yield* rows(acme, (sql) => sql<{ amount_cents: string }>`SELECT amount_cents FROM payment_charges`)
        assert.deepStrictEqual(charges.map((c) => Number(c.amount_cents)), [4200])
        const balance = () => rows(acme, (sql) => sql<{ available_cents: string }>`SELECT available_cents FROM payment_balances WHERE currency = 'EUR'`)
          .pipe(Effect.map((r) => Number(r[0]?.available_cents)))
        assert.strictEqual(yield* balance(), 4200)

        const chargeId = (first.output as { charge_id: string }).charge_id
        yield* tools.call("payments.refund", { charge_id: chargeId, amount_cents: 1000 }, ctx("refund1", acme, "run_pay"))
        assert.strictEqual(yield* balance(), 3200)
        const over = yield* Effect.flip(tools.call("payments.refund", { charge_id: chargeId, amount_cents: 5000 }, ctx("refund2", acme, "run_pay")))
        assert.isTrue(over._tag === "ToolFailed" && !over.retryable)
        yield* tools.call("payments.refund", { charge_id: chargeId }, ctx("refund3", acme, "run_pay"))
        assert.strictEqual(yield* balance(), 0)
        const status = yield* rows(acme, (sql) => sql<{ status: string; refunded_cents: string }>`SELECT status, refunded_cents FROM payment_charges`)
        assert.deepStrictEqual(status.map((s) => [s.status, Number(s.refunded_cents)]), [["refunded", 4200]])

        const declined = yield* Effect.flip(tools.call("payments.charge", { ...charge, payment_method: "pm_card_declined" }, ctx("charge2")))
        assert.isTrue(declined._tag === "ToolFailed" && !declined.retryable && /declined/.test(declined.reason))
      }))

    it.effect("leads, tickets and email write their rows", () =>
      Effect.gen(function*() {
        yield* provision
        const tools = yield* ToolRegistry
        const none = yield* tools.call("leads.find_duplicate", { email: "Bo@Initech.com" }, ctx("dedupe"))
        assert.deepStrictEqual(none.output, { duplicate: false, lead_id: null })
        const scored = (yield* tools.call("leads.qualify", {
          email: "bo@initech.com",
          company: "Initech",
          message: "We need a quote and a demo for 40 seats",
          seats: 40
        }, ctx("qualify"))).output as { score: number; qualification: string }
        assert.strictEqual(scored.qualification, "hot")
        const lead = (yield* tools.call("leads.create", { name: "Bo", email: "bo@initech.com", score: scored.score }, ctx("create"))).output as { lead_id: string }
        const dup = yield* tools.call("leads.find_duplicate", { email: "BO@initech.com" }, ctx("dedupe", acme, "run2"))
        assert.deepStrictEqual(dup.output, { duplicate: true, lead_id: lead.lead_id })

        const ticket = (yield* tools.call("tickets.create", { subject: "Broken mug" }, ctx("ticket"))).output as { ticket_id: string }
        const escalated = yield* tools.call("tickets.escalate", { ticket_id: ticket.ticket_id, reason: "angry customer" }, ctx("escalate"))
        assert.deepStrictEqual(escalated.output, { ticket_id: ticket.ticket_id, status: "escalated", queue: "human", priority: "normal" })
        const tickets = yield* rows(acme, (sql) => sql<{ status: string; queue: string; escalation_reason: string }>`SELECT status, queue, escalation_reason FROM tickets`)
        assert.deepStrictEqual(tickets.map((t) => [t.status, t.queue, t.escalation_reason]), [["escalated", "human", "angry customer"]])

        yield* tools.call("notify.email", { to: "sales@acme.test", subject: "New lead", body: "Bo from Initech" }, ctx("notify"))
        const undeliverable = yield* Effect.flip(tools.call("notify.email", { to: "x@example.invalid", subject: "s", body: "b" }, ctx("notify2")))
        assert.isTrue(undeliverable._tag === "ToolFailed" && !undeliverable.retryable)
        const mails = yield* rows(acme, (sql) => sql<{ recipient: string; run_id: string }>`SELECT recipient, run_id FROM email_outbox`)
        assert.deepStrictEqual(mails.map((m) => [m.recipient, m.run_id]), [["sales@acme.test", "run1"]])
      }))

    it.effect("knowledge.search searches the tenant's knowledge base", () =>
      Effect.gen(function*() {
        yield* provision
        const store = yield* KnowledgeStore.KnowledgeStore
        yield* store.add(TenantId.make(acme), {
          sourceKey: "returns.md",
          title: "Returns",
          format: "markdown",
          content: "# Returns\n\nYou can return any item within 30 days for a full refund.",
          tags: [],
          metadata: {}
        })
        const tools = yield* ToolRegistry
        const found = (yield* tools.call("knowledge.search", { query: "return an item refund" }, ctx("search"))).output as {
          hits: ReadonlyArray<{ source_key: string }>
          score: number
        }
        assert.strictEqual(found.hits[0]?.source_key, "returns.md")
        assert.isAbove(found.score, 0)
        const other = (yield* tools.call("knowledge.search", { query: "return an item refund" }, ctx("search", globex))).output as { hits: ReadonlyArray<unknown> }
        assert.strictEqual(other.hits.length, 0)
      }))

    it.scoped("http signs the body with the endpoint's secret, retries a 503 and never repeats a recorded call", () =>
      Effect.gen(function*() {
        yield* provision
        const received: Array<{ body: string; signature: string | undefined; key: string | undefined }> = []
        const server = yield* Effect.acquireRelease(
          Effect.async<http.Server>((resume) => {
            const s = http.createServer((req, res) => {
              let body = ""
              req.on("data", (part: Buffer) => (body += part.toString()))
              req.on("end", () => {
                const header = req.headers[signatureHeader]
                received.push({ body, signature: typeof header === "string" ? header : undefined, key: req.headers["idempotency-key"] as string | undefined })
                if (received.length === 1) {
                  res.writeHead(503).end("busy")
                  return
                }
                res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ ok: true, path: req.url }))
              })
            })
            s.listen(0, "127.0.0.1", () => resume(Effect.succeed(s)))
          }),
          (s) =>
            Effect.async<void>((resume) => {
              s.close(() => resume(Effect.void))
            })
        )
        const address = server.address()
        const port = typeof address === "object" && address !== null ? address.port : 0
        const db = yield* Database
        yield* db.tenant(acme)(db.sql`INSERT INTO tenant_http_endpoints (tenant_id, name, url, secret, timeout_ms)
          VALUES (${acme}, 'crm', ${`http://127.0.0.1:${port}/hooks`}, 'shh', 2000)`).pipe(Effect.orDie)

        const tools = yield* ToolRegistry
        const input = { endpoint: "crm", path: "/lead", body: { name: "Bo", amount: 3 } }
        const result = yield* tools.call("http", input, ctx("crm"), {
          retry: { times: 2, backoff: "fixed", base: Duration.millis(10), max: Duration.millis(10), jitter: 0 }
        })
        assert.deepStrictEqual(result.output, { status: 200, body: { ok: true, path: "/hooks/lead" } })
        assert.strictEqual(received.length, 2)
        for (const r of received) {
          assert.strictEqual(r.body, JSON.stringify({ name: "Bo", amount: 3 }))
          assert.strictEqual(r.signature, sign("shh", r.body))
          assert.strictEqual(r.key, "run1:crm")
        }
        const replay = yield* tools.call("http", input, ctx("crm"))
        assert.isTrue(replay.replayed)
        assert.strictEqual(received.length, 2, "a recorded call is not sent again")

        const missing = yield* Effect.flip(tools.call("http", { endpoint: "nope" }, ctx("crm2")))
        assert.isTrue(missing._tag === "ToolFailed" && /no endpoint named nope/.test(missing.reason))
      }).pipe(TestServices.provideLive))
  })
})
