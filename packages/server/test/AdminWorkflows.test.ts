/**
 * `POST /v1/admin/workflows/validate` through real HTTP: the upload's check without the upload. A
 * valid overlay is `valid`, an invalid one lists positioned diagnostics (an unknown tool, an
 * unbounded cycle), and neither writes a row to `workflow_overlays`; it needs the `admin` scope.
 */
import { assert, layer } from "@effect/vitest"
import { Database } from "@tessera/runtime/Database"
import * as Effect from "effect/Effect"
import * as EdgeNode from "./EdgeNode.js"

const { http, tenant } = EdgeNode

interface Diagnostic {
  readonly line: number
  readonly column: number
  readonly field: string
  readonly message: string
}

const valid = [
  "name: faq_handling",
  "extends: faq_handling",
  "steps:",
  "  - id: handoff_reply",
  "    kind: respond",
  "    answer: \"We will call you back (ticket {{ steps.handoff.ticket_id }}).\"",
  "    escalated: true"
].join("\n")

/** `handoff` calls a tool that does not exist, and `grounded` loops back to `answer` with no bound. */
const invalid = [
  "name: faq_handling",
  "extends: faq_handling",
  "steps:",
  "  - id: handoff",
  "    kind: tool",
  "    tool: tickets.teleport",
  "    input: { subject: x }",
  "    next: handoff_reply",
  "  - id: grounded",
  "    kind: branch",
  "    branches:",
  "      - { when: \"steps.answer.answered\", next: answer }",
  "    default: handoff"
].join("\n")

layer(EdgeNode.layer(), { timeout: 120_000, excludeTestServices: true })("Admin workflow validation", (it) => {
  it.effect("a valid overlay is valid, an invalid one has positioned diagnostics; nothing is stored", () =>
    Effect.gen(function*() {
      const omega = yield* tenant("omega")
      const ok = yield* http("POST", "/v1/admin/workflows/validate", { key: omega.key, body: { file: "faq.yaml", source: valid } })
      assert.strictEqual(ok.status, 200, ok.text)
      assert.deepStrictEqual(ok.body, { valid: true, diagnostics: [] })

      const bad = yield* http("POST", "/v1/admin/workflows/validate", { key: omega.key, body: { source: invalid } })
      assert.strictEqual(bad.status, 200, bad.text)
      assert.strictEqual(bad.body.valid, false)
      const diagnostics = bad.body.diagnostics as ReadonlyArray<Diagnostic>
      const tool = diagnostics.find((d) => d.message.includes("tickets.teleport"))
      assert.isDefined(tool, bad.text)
      assert.deepInclude(tool!, { line: 6, column: 11, field: "steps[0].tool" })
      const cycle = diagnostics.find((d) => d.message.includes("cycle"))
      assert.isDefined(cycle, bad.text)
      assert.isAbove(cycle!.line, 0)
      assert.isAbove(cycle!.column, 0)
      assert.match(cycle!.message, /answer/)

      const db = yield* Database
      const stored = yield* db.tenant("omega")(db.sql`SELECT name FROM workflow_overlays WHERE tenant_id = 'omega'`)
      assert.lengthOf(stored, 0)
      // The tenant still runs the shared workflow: no overlay is listed.
      const list = yield* http("GET", "/v1/admin/workflows", { key: omega.key })
      const faq = (JSON.parse(list.text) as ReadonlyArray<{ name: string; overlay: boolean }>).find((w) => w.name === "faq_handling")
      assert.strictEqual(faq?.overlay, false)
    }))

  it.effect("a schema violation is 400 naming the field; without the admin scope it is 403", () =>
    Effect.gen(function*() {
      const omega = yield* tenant("omega")
      const empty = yield* http("POST", "/v1/admin/workflows/validate", { key: omega.key, body: { source: "" } })
      assert.strictEqual(empty.status, 400, empty.text)
      assert.include(String(empty.body.message), "source")
      const writer = yield* tenant("omega", "pro", ["read", "write"])
      const denied = yield* http("POST", "/v1/admin/workflows/validate", { key: writer.key, body: { source: valid } })
      assert.strictEqual(denied.status, 403, denied.text)
      assert.strictEqual(denied.body.code, "insufficient_scope")
    }))
})
