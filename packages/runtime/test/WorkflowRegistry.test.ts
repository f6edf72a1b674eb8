import * as NodeContext from "@effect/platform-node/NodeContext"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as TestClock from "effect/TestClock"
import { Database } from "../src/Database.js"
import * as TestDatabase from "../src/TestDatabase.js"
import * as WorkflowRegistry from "../src/WorkflowRegistry.js"

const start = WorkflowRegistry.make({ dir: WorkflowRegistry.defaultDir, refresh: "30 seconds" })

/** Acme's version of faq_handling: only the hand-off reply differs. */
const acmeOverlay = {
  file: "acme/faq_handling.yaml",
  text: [
    "name: faq_handling",
    "extends: faq_handling",
    "steps:",
    "  - id: handoff_reply",
    "    kind: respond",
    "    answer: \"Acme support will call you back (ticket {{ steps.handoff.ticket_id }}).\"",
    "    escalated: true"
  ].join("\n")
}

const handoffReply = (registry: WorkflowRegistry.WorkflowRegistry["Type"], tenantId: string) =>
  Effect.map(registry.get(tenantId, "faq_handling"), (workflow) => {
    const step = workflow.steps.find((s) => s.id === "handoff_reply")
    return step?.kind === "respond" ? step.answer : ""
  })

/**
 * Lets the database I/O of a fiber that TestClock.adjust woke (a refresh) finish: polls `check`
 * between turns of the event loop (a millisecond apart), at most `turns` of them.
 */
const settle = <R>(check: Effect.Effect<boolean, never, R>, turns: number) =>
  Effect.gen(function*() {
    for (let i = 0; i < turns && !(yield* check); i++) {
      yield* Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 1)))
    }
  })

describe("WorkflowRegistry", () => {
  it.layer(Layer.mergeAll(TestDatabase.layer, NodeContext.layer), { timeout: 60_000 })((it) => {
    it.scoped("serves the shipped workflows, their triggers, and a typed error for an unknown name", () =>
      Effect.gen(function*() {
        const registry = yield* start
        assert.deepStrictEqual(registry.list().map((e) => e.name), [
          "customer_support",
          "faq_handling",
          "order_management",
          "create_order",
          "track_order",
          "cancel_order",
          "lead_capture",
          "complaint_handling",
          "technical_support",
          "payment_issue"
        ])
        const support = yield* registry.get("any", "customer_support")
        assert.strictEqual(support.start, "classify")
        const triggers = registry.triggers()
        assert.deepStrictEqual(triggers.find((t) => t.intent === "support"), {
          intent: "support",
          workflow: "customer_support",
          examples: ["I need help", "question about my account"]
        })
        assert.deepStrictEqual(triggers.find((t) => t.intent === "faq")?.workflow, "faq_handling")
        const missing = yield* registry.get("any", "returns_handling").pipe(Effect.flip)
        assert.strictEqual(missing._tag, "WorkflowNotFound")
        assert.strictEqual(missing.message, "no workflow named returns_handling is registered")
      }))

    it.scoped("a tenant overlay replaces a named step for that tenant only, is stored under RLS, and survives a restart", () =>
      Effect.gen(function*() {
        const registry = yield* start
        const shared = yield* handoffReply(registry, "acme")
        const stored = yield* registry.putOverlay("acme", acmeOverlay)
        assert.strictEqual(stored.name, "faq_handling")

        assert.include(yield* handoffReply(registry, "acme"), "Acme support")
        assert.strictEqual(yield* handoffReply(registry, "globex"), shared)
        const acme = yield* registry.get("acme", "faq_handling")
        const base = yield* registry.get("globex", "faq_handling")
        assert.deepStrictEqual(acme.steps.map((s) => s.id), base.steps.map((s) => s.id))
        assert.strictEqual(registry.list("acme").find((e) => e.name === "faq_handling")?.workflow, acme)
        assert.strictEqual(registry.list().find((e) => e.name === "faq_handling")?.workflow, base)

        const db = yield* Database
        const rows = (tenantId: string) =>
          db.tenant(tenantId)(db.sql<{ name: string }>`SELECT name FROM workflow_overlays`).pipe(Effect.map((r) => r.map((x) => x.name)))
        assert.deepStrictEqual(yield* rows("acme"), ["faq_handling"])
        assert.deepStrictEqual(yield* rows("globex"), [])
        assert.deepStrictEqual((yield* registry.overlays("acme")).map((o) => [o.name, o.source]), [["faq_handling", acmeOverlay.text]])

        // Another node (or this one after a restart) loads it from the table.
        const other = yield* start
        assert.include(yield* handoffReply(other, "acme"), "Acme support")

        assert.isTrue(yield* registry.removeOverlay("acme", "faq_handling"))
        assert.isFalse(yield* registry.removeOverlay("acme", "faq_handling"))
        assert.strictEqual(yield* handoffReply(registry, "acme"), shared)
        assert.deepStrictEqual(yield* rows("acme"), [])
      }))

    it.scoped("an invalid overlay is refused with every diagnostic, and nothing is stored", () =>
      Effect.gen(function*() {
        const registry = yield* start
        const refused = yield* registry.putOverlay("acme", {
          file: "acme/faq_handling.yaml",
          text: [
            "name: faq_handling",
            "extends: faq_handling",
            "steps:",
            "  - id: teleport",
            "    kind: respond",
            "    answer: hi",
            "  - id: handoff",
            "    kind: tool",
            "    tool: tickets.teleport"
          ].join("\n")
        }).pipe(Effect.flip)
        assert.strictEqual(refused._tag, "WorkflowInvalid")
        assert.deepStrictEqual(refused._tag === "WorkflowInvalid" ? refused.diagnostics.map(String) : [], [
          "acme/faq_handling.yaml:2:10 extends: base step \"handoff_reply\": step \"handoff_reply\" is never reached from \"search\"",
          "acme/faq_handling.yaml:4:9 steps[0].id: replaces step \"teleport\", which base workflow \"faq_handling\" does not have",
          "acme/faq_handling.yaml:9:11 steps[1].tool: unknown tool \"tickets.teleport\""
        ])
        assert.deepStrictEqual(yield* registry.overlays("acme"), [])
      }))

    it.scoped("other nodes pick an upload up on their next refresh (TestClock)", () =>
      Effect.gen(function*() {
        const nodeA = yield* start
        const nodeB = yield* start
        yield* nodeA.putOverlay("acme", acmeOverlay)
        const servedByB = Effect.map(handoffReply(nodeB, "acme"), (answer) => answer.includes("Acme support"))
        assert.isFalse(yield* servedByB)
        yield* TestClock.adjust("29 seconds")
        yield* settle(Effect.orDie(servedByB), 100)
        assert.isFalse(yield* servedByB, "not before the refresh interval")
        yield* TestClock.adjust("1 second")
        yield* settle(Effect.orDie(servedByB), 5_000)
        assert.isTrue(yield* servedByB)
        yield* nodeA.removeOverlay("acme", "faq_handling")
      }))

    it.scoped("a stored overlay that no longer validates is not served: the tenant runs the shared workflow", () =>
      Effect.gen(function*() {
        const db = yield* Database
        // Stored when the shared workflow still had a `greeting` step (since removed).
        yield* db.tenant("initech")(db.sql`
          INSERT INTO workflow_overlays (tenant_id, name, source)
          VALUES ('initech', 'faq_handling', ${"name: faq_handling\nextends: faq_handling\nsteps:\n  - { id: greeting, kind: respond, answer: hi }"})`)
        const registry = yield* start
        const workflow = yield* registry.get("initech", "faq_handling")
        const shared = yield* registry.get("globex", "faq_handling")
        assert.strictEqual(workflow, shared)
        assert.isTrue(Either.isRight(yield* Effect.either(registry.refresh)))
      }))
  })
})
