import * as NodeContext from "@effect/platform-node/NodeContext"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as WorkflowLoader from "../src/WorkflowLoader.js"
import * as WorkflowRegistry from "../src/WorkflowRegistry.js"

const root = Path.resolve(import.meta.dirname, "../../..")
const invalid = "test/fixtures/workflows/invalid"
const loadFile = (file: string) =>
  WorkflowLoader.load([{ file, text: Fs.readFileSync(Path.join(root, file), "utf8") }]).diagnostics.map(String)

const expected: Record<string, ReadonlyArray<string>> = {
  "cycle.yaml": [
    `${invalid}/cycle.yaml:3:9 steps[0].id: cycle ask → check → ask has no bound: give one of its steps max_visits, or loop back through a validate step's repair`
  ],
  "unknown_tool.yaml": [`${invalid}/unknown_tool.yaml:5:11 steps[0].tool: unknown tool "payments.teleport"`],
  "missing_subworkflow.yaml": [
    `${invalid}/missing_subworkflow.yaml:5:15 steps[0].workflow: sub-workflow "returns_handling" does not exist`
  ],
  "missing_step.yaml": [
    `${invalid}/missing_step.yaml:7:15 steps[0].on_error: step "apologise" does not exist`,
    `${invalid}/missing_step.yaml:12:59 steps[1].branches[0].next: step "shipped" does not exist`
  ],
  "missing_keys.yaml": [
    `${invalid}/missing_keys.yaml:3:5 steps[0].tool: is missing`,
    `${invalid}/missing_keys.yaml:9:10 steps[1].nxt: unknown key`
  ],
  "bad_expression.yaml": [
    `${invalid}/bad_expression.yaml:10:40 steps[1].branches[0].when: expression: unexpected end of expression at character 23`,
    `${invalid}/bad_expression.yaml:14:26 steps[2].answer: template: "{{" without a closing "}}" at character 13`
  ],
  "unknown_step_ref.yaml": [
    `${invalid}/unknown_step_ref.yaml:10:18 steps[1].branches[0].when: expression: steps.serch reads a step that does not exist at character 1`,
    `${invalid}/unknown_step_ref.yaml:14:70 steps[2].answer: template: steps.answr reads a step that does not exist at character 57`
  ],
  "wrong_types.yaml": [
    `${invalid}/wrong_types.yaml:2:21 budgets.wall_ms: Expected number, actual "soon"`,
    `${invalid}/wrong_types.yaml:6:12 steps[0].query: Expected string, actual 42`,
    `${invalid}/wrong_types.yaml:7:12 steps[0].top_k: Expected number, actual "many"`,
    `${invalid}/wrong_types.yaml:8:21 steps[0].retry.times: Expected a number between 0 and 20, actual -1`,
    `${invalid}/wrong_types.yaml:10:11 steps[1].kind: unknown step kind "teleport" (expected one of llm, tool, retrieve, route, branch, validate, workflow, wait, respond)`
  ],
  "unreachable.yaml": [`${invalid}/unreachable.yaml:6:9 steps[1].id: step "orphan" is never reached from "reply"`],
  "duplicate_id.yaml": [`${invalid}/duplicate_id.yaml:10:9 steps[2].id: duplicate step id "reply"`],
  "recursive_subworkflow.yaml": [
    `${invalid}/recursive_subworkflow.yaml:10:15 steps[1].workflow: sub-workflow cycle recursive_subworkflow → recursive_subworkflow: a workflow cannot run itself, directly or through sub-workflows`
  ],
  "yaml_syntax.yaml": [
    `${invalid}/yaml_syntax.yaml:4:11 YAML: Nested mappings are not allowed in compact mappings`,
    `${invalid}/yaml_syntax.yaml:4:11 YAML: Implicit keys need to be on a single line`
  ],
  "overlay_missing_base.yaml": [
    `${invalid}/overlay_missing_base.yaml:2:10 extends: base workflow "returns_handling" does not exist`
  ]
}

const yaml = (...lines: ReadonlyArray<string>) => lines.join("\n")

/** The shipped workflows, loaded together the way a node loads them. */
const shipped = () =>
  WorkflowRegistry.loadShared({ dir: WorkflowRegistry.defaultDir }).pipe(Effect.provide(NodeContext.layer))

describe("WorkflowLoader", () => {
  it("reports every problem of an invalid workflow with file, line, column and field", () => {
    assert.deepStrictEqual(
      Fs.readdirSync(Path.join(root, invalid)).sort(),
      [...Object.keys(expected), "bad_overlay.yaml"].sort(),
      "every fixture is asserted"
    )
    for (const [file, diagnostics] of Object.entries(expected)) {
      assert.deepStrictEqual(loadFile(`${invalid}/${file}`), diagnostics, file)
    }
  })

  it("reports the problems of several files at once, sorted by file and position", () => {
    const files = ["unknown_tool.yaml", "cycle.yaml", "wrong_types.yaml"].map((f) => `${invalid}/${f}`)
    const { diagnostics, workflows } = WorkflowLoader.load(
      files.map((file) => ({ file, text: Fs.readFileSync(Path.join(root, file), "utf8") }))
    )
    assert.deepStrictEqual(diagnostics.map(String), [
      ...expected["cycle.yaml"]!,
      ...expected["unknown_tool.yaml"]!,
      ...expected["wrong_types.yaml"]!
    ])
    assert.strictEqual(workflows.size, 0, "nothing of an invalid set is served")

    const mutual = WorkflowLoader.load([
      { file: "orders.yaml", text: "name: orders\nsteps: [{ id: refund, kind: workflow, workflow: refunds }]" },
      { file: "refunds.yaml", text: "name: refunds\nsteps: [{ id: back, kind: workflow, workflow: orders }]" }
    ])
    assert.deepStrictEqual(mutual.diagnostics.map(String), [
      "orders.yaml:2:49 steps[0].workflow: sub-workflow cycle orders → refunds → orders: a workflow cannot run itself, directly or through sub-workflows",
      "refunds.yaml:2:47 steps[0].workflow: sub-workflow cycle refunds → orders → refunds: a workflow cannot run itself, directly or through sub-workflows"
    ])
  })

  it.effect("every shipped workflow validates; every sub-workflow they call exists", () =>
    Effect.gen(function*() {
      const { entries, workflows } = yield* shipped()
      assert.deepStrictEqual(entries.map((e) => e.name).sort(), [
        "cancel_order",
        "complaint_handling",
        "create_order",
        "customer_support",
        "faq_handling",
        "lead_capture",
        "order_management",
        "payment_issue",
        "technical_support",
        "track_order"
      ])
      for (const workflow of workflows.values()) {
        for (const step of workflow.steps) {
          if (step.kind === "workflow") assert.isTrue(workflows.has(step.workflow), `${workflow.name} calls ${step.workflow}`)
        }
      }
      const create = workflows.get("create_order")!
      assert.deepStrictEqual(
        create.steps.flatMap((s) => s.compensate === undefined ? [] : [[s.id, s.compensate.tool]]),
        [["reserve", "orders.cancel"], ["charge", "payments.refund"]]
      )
    }))

  it("positions an expression error inside the YAML string: plain, quoted with escapes, and | blocks", () => {
    const text = yaml(
      "name: positions",
      "steps:",
      "  - id: draft",
      "    kind: llm",
      "    system: \"Say \\\"hi\\\" to {{ input.name + }}\"",
      "    prompt: |",
      "      You help customers of {{ context.shop }}.",
      "      Their question: {{ input.message ) }}",
      "    next: reply",
      "  - id: reply",
      "    kind: respond",
      "    answer: Hello {{ steps.draft..text }}"
    )
    assert.deepStrictEqual(WorkflowLoader.load([{ file: "positions.yaml", text }]).diagnostics.map(String), [
      "positions.yaml:5:44 steps[0].system: template: unexpected end of expression at character 29",
      "positions.yaml:8:40 steps[0].prompt: template: unexpected text after the expression at character 76",
      "positions.yaml:12:34 steps[1].answer: template: expected a property name after \".\" at character 22"
    ])
  })

  it("allows a cycle only when it is bounded: a validate step's repair loop, or a step with max_visits", () => {
    const repair = yaml(
      "name: repair_loop",
      "steps:",
      "  - { id: draft, kind: llm, prompt: \"{{ input.message }}\", next: check }",
      "  - id: check",
      "    kind: validate",
      "    value: \"{{ steps.draft.text }}\"",
      "    gates: [{ score_threshold: { score: \"steps.draft.confidence\", min: 0.7 } }]",
      "    repair: { step: draft, max: 2 }",
      "    on_error: escalate",
      "    next: reply",
      "  - { id: reply, kind: respond, answer: \"{{ steps.draft.text }}\" }"
    )
    const visits = yaml(
      "name: ask_again",
      "steps:",
      "  - { id: ask, kind: llm, prompt: \"{{ input.message }}\", next: check, max_visits: 3 }",
      "  - id: check",
      "    kind: branch",
      "    branches: [{ when: \"steps.ask.answered\", next: reply }]",
      "    default: ask",
      "  - { id: reply, kind: respond, answer: \"{{ steps.ask.text }}\" }"
    )
    const { diagnostics, workflows } = WorkflowLoader.load([
      { file: "repair_loop.yaml", text: repair },
      { file: "ask_again.yaml", text: visits }
    ])
    assert.deepStrictEqual(diagnostics.map(String), [])
    assert.strictEqual(workflows.get("ask_again")!.steps[0]!.max_visits, 3)
    // The same loop without the bound is refused.
    const unbounded = WorkflowLoader.load([{ file: "ask_again.yaml", text: visits.replace(", max_visits: 3", "") }])
    assert.deepStrictEqual(unbounded.diagnostics.map(String), [
      "ask_again.yaml:3:11 steps[0].id: cycle ask → check → ask has no bound: give one of its steps max_visits, or loop back through a validate step's repair"
    ])
  })

  it.effect("an overlay replaces a named step of its base and keeps the rest; a bad one is refused", () =>
    Effect.gen(function*() {
      const { workflows: known } = yield* shipped()
      const overlay = yaml(
        "name: faq_handling",
        "extends: faq_handling",
        "budgets: { wall_ms: 10000 }",
        "steps:",
        "  - id: handoff_reply",
        "    kind: respond",
        "    answer: \"Acme support will call you back (ticket {{ steps.handoff.ticket_id }}).\"",
        "    escalated: true"
      )
      const loaded = WorkflowLoader.load([{ file: "acme/faq_handling.yaml", text: overlay }], { known, overlaysOnly: true })
      assert.deepStrictEqual(loaded.diagnostics.map(String), [])
      const acme = loaded.workflows.get("faq_handling")!
      const base = known.get("faq_handling")!
      assert.deepStrictEqual(acme.steps.map((s) => s.id), base.steps.map((s) => s.id))
      const reply = acme.steps.find((s) => s.id === "handoff_reply")
      assert.include(reply?.kind === "respond" ? reply.answer : "", "Acme support")
      assert.strictEqual(acme.steps.find((s) => s.id === "search"), base.steps.find((s) => s.id === "search"))
      assert.deepStrictEqual(acme.budgets, { wall_ms: 10000 })
      assert.strictEqual(acme.start, base.start)

      const bad = WorkflowLoader.load(
        [{ file: `${invalid}/bad_overlay.yaml`, text: Fs.readFileSync(Path.join(root, invalid, "bad_overlay.yaml"), "utf8") }],
        { known }
      )
      assert.deepStrictEqual(bad.diagnostics.map(String), [
        `${invalid}/bad_overlay.yaml:4:9 steps[0].id: replaces step "teleport", which base workflow "faq_handling" does not have`
      ])
      const twice = WorkflowLoader.load([{
        file: "acme/faq_handling.yaml",
        text: "name: faq_handling\nextends: faq_handling\nsteps:\n  - { id: reply, kind: respond, answer: a }\n  - { id: reply, kind: respond, answer: b }"
      }], { known })
      assert.deepStrictEqual(twice.diagnostics.map(String), [
        "acme/faq_handling.yaml:5:11 steps[1].id: duplicate step id \"reply\""
      ])
      const whole = WorkflowLoader.load([{ file: "acme/mine.yaml", text: "name: mine\nsteps: [{ id: r, kind: respond, answer: hi }]" }], {
        known,
        overlaysOnly: true
      })
      assert.deepStrictEqual(whole.diagnostics.map(String), [
        "acme/mine.yaml:1:7 name: a tenant workflow is an overlay: add extends: <shared workflow>"
      ])
    }))

  it("tessera workflows validate: every problem printed, exit code 1; ok lines and 0 for valid files", () => {
    const cli = (...args: ReadonlyArray<string>) => {
      try {
        return { code: 0, out: execFileSync("node", ["--import", "tsx", "packages/server/src/bin.ts", "workflows", "validate", ...args], { cwd: root, encoding: "utf8", stdio: "pipe" }) }
      } catch (error) {
        const e = error as { status: number; stdout: string; stderr: string }
        return { code: e.status, out: e.stdout + e.stderr }
      }
    }
    const bad = cli(`${invalid}/cycle.yaml`, `${invalid}/unknown_tool.yaml`, `${invalid}/no_such_file.yaml`)
    assert.strictEqual(bad.code, 1)
    assert.include(bad.out, expected["cycle.yaml"]![0]!)
    assert.include(bad.out, expected["unknown_tool.yaml"]![0]!)
    assert.include(bad.out, `${invalid}/no_such_file.yaml:1:1 cannot read the file (NotFound)`)
    assert.include(bad.out, "tessera workflows: 3 problem(s) found")
    assert.notInclude(bad.out, "ok ")
    const good = cli("workflows/registry.yaml", "workflows/faq_handling.yaml", "workflows/customer_support.yaml")
    assert.strictEqual(good.code, 0)
    assert.strictEqual(
      good.out.trim(),
      ["ok workflows/registry.yaml", "ok workflows/faq_handling.yaml", "ok workflows/customer_support.yaml"].join("\n")
    )
    // An overlay file is checked against the shared workflows of WORKFLOWS_DIR.
    const overlay = cli(`${invalid}/bad_overlay.yaml`)
    assert.strictEqual(overlay.code, 1)
    assert.include(
      overlay.out,
      `${invalid}/bad_overlay.yaml:4:9 steps[0].id: replaces step "teleport", which base workflow "faq_handling" does not have`
    )
  }, 60_000)
})
