/**
 * The executor on hand-built plans, through the Run entity on a test cluster, the real Postgres
 * and the real tools. Time (retries, timeouts, budgets, waits) is the TestClock's.
 */
import { TestRunner } from "@effect/cluster"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import { assert, describe, it } from "@effect/vitest"
import { RunId, TenantId } from "@tessera/domain/Ids"
import type { Run } from "@tessera/domain/Run"
import * as RunEntity from "@tessera/domain/RunEntity"
import { WorkflowNotFound } from "@tessera/domain/RunError"
import { TenantEntity } from "@tessera/domain/TenantEntity"
import { ToolFailed } from "@tessera/domain/ToolError"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as TestClock from "effect/TestClock"
import * as Bulkhead from "../src/Bulkhead.js"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import { Database } from "../src/Database.js"
import * as KnowledgeStore from "../src/KnowledgeStore.js"
import * as LocalEmbedder from "../src/LocalEmbedder.js"
import * as PgVectorStore from "../src/PgVectorStore.js"
import * as JournalWriter from "../src/JournalWriter.js"
import * as RunEntityLive from "../src/RunEntity.js"
import * as RunJournal from "../src/RunJournal.js"
import * as SandboxPayments from "../src/SandboxPayments.js"
import * as TenantEntityLive from "../src/TenantEntity.js"
import * as TestDatabase from "../src/TestDatabase.js"
import * as Tool from "../src/Tool.js"
import * as ToolRegistry from "../src/ToolRegistry.js"
import * as WorkflowExecutor from "../src/WorkflowExecutor.js"
import { WorkflowPlans } from "../src/WorkflowPlans.js"
import type * as WorkflowPlan from "../src/WorkflowPlan.js"

// ---------------------------------------------------------------------------------------------
// Plans by hand

const value = (f: (scope: WorkflowPlan.Scope) => unknown): WorkflowPlan.Value => (scope) => Either.right(f(scope))
const constant = (v: unknown) => value(() => v)
const field = (v: unknown, ...path: ReadonlyArray<string>): unknown =>
  path.reduce<unknown>((acc, key) => (typeof acc === "object" && acc !== null ? Reflect.get(acc, key) : undefined), v)

const step = (id: string, kind: WorkflowPlan.Kind, next: string | undefined, extra: Partial<WorkflowPlan.Step> = {}): WorkflowPlan.Step => ({
  id,
  kind,
  next,
  timeout: undefined,
  retry: undefined,
  onError: { _tag: "Fail" },
  compensate: undefined,
  ...extra
})

const tool = (name: string, input: WorkflowPlan.Value): WorkflowPlan.Kind => ({ _tag: "tool", call: { tool: name, input } })

const respond = (answer: WorkflowPlan.Value): WorkflowPlan.Kind => ({
  _tag: "respond",
  answer,
  citations: undefined,
  escalated: undefined
})

const plan = (name: string, steps: ReadonlyArray<WorkflowPlan.Step>, budgets: Partial<WorkflowPlan.Budgets> = {}): WorkflowPlan.Plan => ({
  name,
  version: "1",
  start: steps[0]!.id,
  steps: new Map(steps.map((s) => [s.id, s])),
  budgets: { wallMs: undefined, tokens: undefined, costUsd: undefined, ...budgets }
})

const createOrder = (budgets: Partial<WorkflowPlan.Budgets> = {}, extra: ReadonlyArray<WorkflowPlan.Step> = []) =>
  plan("create_order", [
    step("reserve", tool("orders.create", value((s) => ({ customer_email: field(s.input, "email"), items: field(s.input, "items") }))), "charge"),
    step(
      "charge",
      tool("payments.charge", value((s) => ({
        amount_cents: field(s.steps, "reserve", "total_cents"),
        customer: field(s.input, "email"),
        order_id: field(s.steps, "reserve", "order_id")
      }))),
      extra.length > 0 ? extra[0]!.id : "confirm"
    ),
    ...extra,
    step("confirm", tool("orders.modify", value((s) => ({ order_id: field(s.steps, "reserve", "order_id"), confirm: true }))), "email"),
    step(
      "email",
      tool("notify.email", value((s) => ({ to: field(s.input, "email"), subject: "Your order", body: `Order ${String(field(s.steps, "reserve", "order_id"))}` }))),
      "done"
    ),
    step("done", respond(value((s) => `Order ${String(field(s.steps, "reserve", "order_id"))} is confirmed.`)), undefined)
  ], budgets)

const plans = new Map<string, WorkflowPlan.Plan>()
const Plans = Layer.succeed(WorkflowPlans, {
  get: (_tenantId, name) => {
    const found = plans.get(name)
    return found === undefined ? Effect.fail(new WorkflowNotFound({ workflow: name })) : Effect.succeed(found)
  }
})

// ---------------------------------------------------------------------------------------------
// Test tools: one that fails retryably a number of times, one that takes its time.

const flakyCalls: Array<number> = []
const Flaky = Tool.make({
  name: "test.flaky",
  description: "Fails (retryably) until its third call.",
  input: Schema.Struct({ label: Schema.String }),
  output: Schema.Struct({ call: Schema.Int }),
  timeout: "1 minute",
  retry: Tool.noRetry,
  idempotent: true,
  transactional: false,
  run: () =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => {
      flakyCalls.push(now)
      return flakyCalls.length < 3
        ? Effect.fail(new ToolFailed({ tool: "test.flaky", reason: `call ${flakyCalls.length} failed`, retryable: true }))
        : Effect.succeed({ call: flakyCalls.length })
    })
})

const Slow = Tool.make({
  name: "test.slow",
  description: "Answers after `ms` milliseconds.",
  input: Schema.Struct({ ms: Schema.Int }),
  output: Schema.Struct({ waited: Schema.Int }),
  timeout: "1 hour",
  retry: Tool.noRetry,
  idempotent: true,
  transactional: false,
  run: (input) => Effect.as(Effect.sleep(Duration.millis(input.ms)), { waited: input.ms })
})

const Tools = ToolRegistry.layerWith([Flaky, Slow]).pipe(
  Layer.provide([SandboxPayments.layer, FetchHttpClient.layer, CircuitBreaker.layer, Bulkhead.layer]),
  Layer.provide(KnowledgeStore.layer),
  Layer.provide(PgVectorStore.layer),
  Layer.provide(LocalEmbedder.layer),
  Layer.orDie
)

const shardsAcquired = Layer.effectDiscard(TestClock.adjust("5 seconds"))

const Cluster = Layer.mergeAll(TenantEntityLive.layer, RunEntityLive.layer).pipe(
  Layer.provideMerge(Layer.mergeAll(Tools, Plans)),
  Layer.provideMerge(TestRunner.layer),
  Layer.provideMerge(TestDatabase.layer),
  (layer) => Layer.provideMerge(shardsAcquired, layer)
)

// ---------------------------------------------------------------------------------------------
// Helpers

const tenantId = TenantId.make("shop")
let counter = 0

/** Records a run and starts it, handing the host the run as recorded when `requested` (as Session.Send does). */
const startRun = (workflow: string, input: Record<string, unknown>, options: { readonly requested?: boolean } = {}) =>
  Effect.gen(function*() {
    const db = yield* Database
    const tenants = yield* TenantEntity.client
    yield* tenants(tenantId).Provision({ name: "Shop", plan: "enterprise" }).pipe(Effect.ignore)
    const runId = RunId.make(`run_${++counter}`)
    yield* db.tenant(tenantId)(db.sql`INSERT INTO agent_runs (tenant_id, id, workflow, status, input)
      VALUES (${tenantId}, ${runId}, ${workflow}, 'requested', ${JSON.stringify(input)})`)
    const run = (yield* RunEntity.handles)(tenantId, runId)
    yield* run.Start(options.requested ? new RunEntity.RequestedRun({ workflow, input, sessionId: null, userId: null }) : undefined)
    return { runId, run }
  })

/** Polls Postgres (not the clock) until the run has left the unfinished states. */
const settled = (runId: string): Effect.Effect<Run, unknown, Database | import("@effect/cluster/Sharding").Sharding> =>
  Effect.gen(function*() {
    const db = yield* Database
    yield* db.tenant(tenantId)(db.sql<{ status: string }>`SELECT status FROM agent_runs WHERE id = ${runId}`).pipe(
      Effect.repeat({ until: (rows) => rows[0]?.status !== "requested" && rows[0]?.status !== "started" })
    )
    return yield* (yield* RunEntity.handles)(tenantId, RunId.make(runId)).Status()
  })

const subjects = (runId: string) =>
  Effect.flatMap(Database, (db) =>
    db.system(db.sql<{ subject: string; step: string | null; tool: string | null }>`
      SELECT subject, envelope->'payload'->>'step' AS step, envelope->'payload'->>'tool' AS tool
      FROM outbox WHERE envelope->>'run_id' = ${runId} ORDER BY seq`))

const query = <A extends object>(f: (sql: Database["sql"]) => Effect.Effect<ReadonlyArray<A>, unknown>) =>
  Effect.flatMap(Database, (db) => db.tenant(tenantId)(f(db.sql)))

const orderInput = (email: string) => ({
  email,
  items: [{ sku: "MUG", quantity: 2, unit_price_cents: 1500 }],
  context: {}
})

// ---------------------------------------------------------------------------------------------

describe("WorkflowExecutor", () => {
  it.scoped("create_order: reserve, charge, confirm, email and respond, each journaled once with its events", () =>
    Effect.gen(function*() {
      plans.set("create_order", createOrder())
      const { runId } = yield* startRun("create_order", orderInput("ann@example.com"))
      const run = yield* settled(runId)
      assert.strictEqual(run.status, "completed")
      assert.deepStrictEqual(run.steps.map((s) => [s.stepId, s.status]), [
        ["reserve", "completed"],
        ["charge", "completed"],
        ["confirm", "completed"],
        ["email", "completed"],
        ["done", "completed"]
      ])
      const output = run.output as { answer: string; escalated: boolean; workflow: string }
      assert.match(output.answer, /^Order ord_[0-9a-f]+ is confirmed\.$/)
      assert.strictEqual(output.escalated, false)
      assert.strictEqual(output.workflow, "create_order")

      const orders = yield* query((sql) => sql<{ status: string; total_cents: string }>`SELECT status, total_cents FROM orders`)
      assert.deepStrictEqual(orders.map((o) => [o.status, Number(o.total_cents)]), [["confirmed", 3000]])
      const charges = yield* query((sql) => sql<{ amount_cents: string; status: string }>`SELECT amount_cents, status FROM payment_charges`)
      assert.deepStrictEqual(charges.map((c) => [Number(c.amount_cents), c.status]), [[3000, "succeeded"]])
      assert.strictEqual((yield* query((sql) => sql`SELECT 1 FROM email_outbox`)).length, 1)

      const events = yield* subjects(runId)
      assert.deepStrictEqual(events.map((e) => e.subject), [
        "agent.run.started",
        ...["reserve", "charge", "confirm", "email"].flatMap(() => ["tool.call.requested", "tool.call.succeeded"]),
        "agent.run.completed"
      ])
    }).pipe(Effect.provide(Cluster)))

  it.scoped("a failure at the email step refunds the charge and releases the order, in reverse order, each journaled", () =>
    Effect.gen(function*() {
      plans.set("create_order", createOrder())
      const { runId } = yield* startRun("create_order", orderInput("bob@example.invalid"))
      const run = yield* settled(runId)
      assert.strictEqual(run.status, "compensated")
      assert.match(run.error ?? "", /tool_failed: notify.email failed: recipient bob@example.invalid/)
      assert.deepStrictEqual(run.steps.map((s) => [s.stepId, s.kind, s.status]), [
        ["reserve", "tool", "completed"],
        ["charge", "tool", "completed"],
        ["confirm", "tool", "completed"],
        ["email", "tool", "failed"],
        ["compensate:charge", "compensation", "completed"],
        ["compensate:reserve", "compensation", "completed"]
      ])
      const charges = yield* query((sql) => sql<{ status: string; refunded_cents: string }>`SELECT status, refunded_cents FROM payment_charges`)
      assert.deepStrictEqual(charges.map((c) => [c.status, Number(c.refunded_cents)]), [["refunded", 3000]])
      const refunds = yield* query((sql) => sql<{ amount_cents: string; reason: string }>`SELECT amount_cents, reason FROM payment_refunds`)
      assert.deepStrictEqual(refunds.map((r) => [Number(r.amount_cents), r.reason]), [[3000, "compensation"]])
      const orders = yield* query((sql) => sql<{ status: string; cancel_reason: string }>`SELECT status, cancel_reason FROM orders`)
      assert.deepStrictEqual(orders.map((o) => [o.status, o.cancel_reason]), [["cancelled", "compensation"]])
      const balance = yield* query((sql) => sql<{ available_cents: string }>`SELECT available_cents FROM payment_balances`)
      assert.strictEqual(Number(balance[0]?.available_cents), 0)
      assert.strictEqual((yield* query((sql) => sql`SELECT 1 FROM email_outbox`)).length, 0)

      const events = (yield* subjects(runId)).filter((e) => e.subject !== "agent.run.started")
      assert.deepStrictEqual(events.slice(6).map((e) => [e.subject, e.step, e.tool]), [
        ["tool.call.requested", "email", "notify.email"],
        ["tool.call.failed", "email", "notify.email"],
        ["tool.call.requested", "compensate:charge", "payments.refund"],
        ["tool.call.succeeded", "compensate:charge", "payments.refund"],
        ["tool.call.requested", "compensate:reserve", "orders.cancel"],
        ["tool.call.succeeded", "compensate:reserve", "orders.cancel"],
        ["agent.run.failed", null, null]
      ])
    }).pipe(Effect.provide(Cluster)))

  it.scoped("a step's retry policy backs off on the clock until the tool succeeds", () =>
    Effect.gen(function*() {
      flakyCalls.length = 0
      plans.set("flaky", plan("flaky", [
        step("call", tool("test.flaky", constant({ label: "x" })), "done", {
          retry: { times: 3, backoff: "exponential", base: Duration.seconds(2), max: Duration.seconds(30), jitter: 0.25 }
        }),
        step("done", respond(value((s) => `call ${String(field(s.steps, "call", "call"))}`)), undefined)
      ]))
      const start = yield* Clock.currentTimeMillis
      const { runId } = yield* startRun("flaky", { context: {} })
      // Nothing succeeds before the backoff has elapsed on the clock.
      for (let i = 0; i < 20 && flakyCalls.length < 3; i++) yield* TestClock.adjust("500 millis")
      const run = yield* settled(runId)
      assert.strictEqual(run.status, "completed")
      assert.strictEqual((run.output as { answer: string }).answer, "call 3")
      const gaps = flakyCalls.map((t, i) => (i === 0 ? t - start : t - flakyCalls[i - 1]!))
      // First retry after 2 s ± 25 %, the second after 4 s ± 25 % (plus the 500 ms steps of the test clock).
      assert.isAtLeast(gaps[1]!, 1_500)
      assert.isAtMost(gaps[1]!, 3_000)
      assert.isAtLeast(gaps[2]!, 3_000)
      assert.isAtMost(gaps[2]!, 5_500)
    }).pipe(Effect.provide(Cluster)))

  it.scoped("a step timeout fails the step; on_error fallback goes on to the fallback step", () =>
    Effect.gen(function*() {
      plans.set("timeout", plan("timeout", [
        step("slow", tool("test.slow", constant({ ms: 60_000 })), "done", {
          timeout: Duration.seconds(5),
          onError: { _tag: "Fallback", step: "sorry" }
        }),
        step("done", respond(constant("fast enough")), undefined),
        step("sorry", respond(value((s) => `fallback after ${String(field(s.steps, "slow", "code"))}`)), undefined)
      ]))
      const { runId } = yield* startRun("timeout", { context: {} })
      yield* TestClock.adjust("4 seconds")
      const db = yield* Database
      const early = yield* db.tenant(tenantId)(db.sql<{ status: string }>`SELECT status FROM agent_runs WHERE id = ${runId}`)
      assert.strictEqual(early[0]?.status, "requested")
      yield* TestClock.adjust("1 second")
      const run = yield* settled(runId)
      assert.strictEqual(run.status, "completed")
      assert.strictEqual((run.output as { answer: string }).answer, "fallback after tool_timeout")
      assert.deepStrictEqual(run.steps.map((s) => [s.stepId, s.status]), [["slow", "failed"], ["sorry", "completed"]])
    }).pipe(Effect.provide(Cluster)))

  it.scoped("the wall_ms budget stops a run mid-step with a typed error and runs the compensations", () =>
    Effect.gen(function*() {
      plans.set("create_order", createOrder({ wallMs: 10_000 }, [step("slow", tool("test.slow", constant({ ms: 60_000 })), "confirm")]))
      const { runId } = yield* startRun("create_order", orderInput("cy@example.com"))
      for (let i = 0; i < 12; i++) yield* TestClock.adjust("1 second")
      const run = yield* settled(runId)
      assert.strictEqual(run.status, "compensated")
      assert.match(run.error ?? "", /^budget_exceeded: run budget wall_ms exceeded/)
      assert.deepStrictEqual(run.steps.map((s) => s.stepId), ["reserve", "charge", "compensate:charge", "compensate:reserve"])
      const orders = yield* query((sql) => sql<{ status: string }>`SELECT status FROM orders WHERE created_by_run = ${runId}`)
      assert.deepStrictEqual(orders.map((o) => o.status), ["cancelled"])
    }).pipe(Effect.provide(Cluster)))

  it.scoped("a wait step goes on with the signal's payload, or fails when its timeout passes first", () =>
    Effect.gen(function*() {
      plans.set("approval", plan("approval", [
        step("approve", { _tag: "wait", signal: "approval", timeout: constant("10 minutes"), onTimeout: undefined }, "done"),
        step("done", respond(value((s) => `approved by ${String(field(s.steps, "approve", "by"))}`)), undefined)
      ]))
      const signalled = yield* startRun("approval", { context: {} })
      const waiting = yield* startRun("approval", { context: {} })
      yield* TestClock.adjust("1 minute")
      yield* signalled.run.Signal("approval", { by: "dana" })
      const approved = yield* settled(signalled.runId)
      assert.strictEqual(approved.status, "completed")
      assert.strictEqual((approved.output as { answer: string }).answer, "approved by dana")

      yield* TestClock.adjust("9 minutes")
      const timedOut = yield* settled(waiting.runId)
      assert.strictEqual(timedOut.status, "failed")
      assert.match(timedOut.error ?? "", /wait_timed_out: step approve waited 600000 ms for signal approval/)
    }).pipe(Effect.provide(Cluster)))

  it.scoped("an llm step with no gateway fails the run with an error naming the missing gateway, never an invented answer", () =>
    Effect.gen(function*() {
      plans.set("llm", plan("llm", [
        step("answer", {
          _tag: "llm",
          prompt: value((s) => field(s.input, "message")),
          system: undefined,
          tier: "auto",
          outputSchema: undefined,
          passages: undefined,
          maxOutputTokens: undefined
        }, undefined)
      ]))
      const { runId } = yield* startRun("llm", { message: "hello", context: {} })
      const run = yield* settled(runId)
      assert.strictEqual(run.status, "failed")
      assert.match(run.error ?? "", /llm_gateway_missing: step answer \(llm\) needs the LLM gateway/)
      assert.isNull(run.output)
    }).pipe(Effect.provide(Cluster)))

  it.scoped("a repair loop that comes back to a rejected output fails the step; on_error escalate hands over to a human", () =>
    Effect.gen(function*() {
      plans.set("repair", plan("repair", [
        step("draft", respond(constant("too short")), "check"),
        step("check", {
          _tag: "validate",
          value: value((s) => field(s.steps, "draft", "answer")),
          gates: [{ _tag: "JsonSchema", schema: { type: "string", minLength: 20 } }],
          repair: { step: "draft", max: 5 }
        }, undefined, { onError: { _tag: "Escalate" } })
      ]))
      const { runId } = yield* startRun("repair", { message: "help", context: {} })
      const run = yield* settled(runId)
      assert.strictEqual(run.status, "completed")
      assert.deepStrictEqual(run.steps.map((s) => [s.stepId, s.status]), [
        ["draft", "completed"],
        ["check", "completed"],
        ["draft#2", "completed"],
        ["check#2", "failed"],
        ["escalate:check", "completed"]
      ])
      assert.strictEqual((run.output as { escalated: boolean }).escalated, true)
      const tickets = yield* query((sql) => sql<{ status: string; escalation_reason: string }>`SELECT status, escalation_reason FROM tickets WHERE run_id = ${runId}`)
      assert.strictEqual(tickets[0]?.status, "escalated")
      assert.match(tickets[0]?.escalation_reason ?? "", /came back to an output already rejected/)
    }).pipe(Effect.provide(Cluster)))

  it.scoped("a run resumed after a crash does not repeat a side effect whose journal row was lost", () =>
    Effect.gen(function*() {
      plans.set("create_order", createOrder())
      const db = yield* Database
      // A previous activation reserved and charged (the tool calls committed) but died before journaling `charge`.
      const tools = yield* ToolRegistry.ToolRegistry
      const runId = RunId.make(`run_${++counter}`)
      const input = orderInput("eve@example.com")
      yield* (yield* TenantEntity.client)(tenantId).Provision({ name: "Shop", plan: "enterprise" }).pipe(Effect.ignore)
      yield* db.tenant(tenantId)(db.sql`INSERT INTO agent_runs (tenant_id, id, workflow, status, input)
        VALUES (${tenantId}, ${runId}, 'create_order', 'requested', ${JSON.stringify(input)})`)
      const ctx = { tenantId, runId, sessionId: null, attempt: 1 }
      const reserved = (yield* tools.call("orders.create", { customer_email: input.email, items: input.items }, { ...ctx, stepId: "reserve" })).output as {
        order_id: string
        total_cents: number
      }
      yield* tools.call("payments.charge", { amount_cents: reserved.total_cents, customer: input.email, order_id: reserved.order_id }, { ...ctx, stepId: "charge" })

      yield* (yield* RunEntity.handles)(tenantId, runId).Start()
      const run = yield* settled(runId)
      assert.strictEqual(run.status, "completed")
      const charges = yield* query((sql) => sql<{ n: string }>`SELECT count(*) AS n FROM payment_charges WHERE order_id = ${reserved.order_id}`)
      assert.strictEqual(Number(charges[0]?.n), 1)
      const orders = yield* query((sql) => sql<{ n: string }>`SELECT count(*) AS n FROM orders WHERE created_by_run = ${runId}`)
      assert.strictEqual(Number(orders[0]?.n), 1)
      const replayed = yield* subjects(runId)
      const succeeded = replayed.filter((e) => e.subject === "tool.call.succeeded").map((e) => e.step)
      assert.deepStrictEqual(succeeded, ["reserve", "charge", "confirm", "email"])
    }).pipe(Effect.provide(Cluster)))

  it.scoped("a Start carrying the run as its caller recorded it runs it; a late copy after the run ended changes nothing", () =>
    Effect.gen(function*() {
      plans.set("create_order", createOrder())
      const input = orderInput("kim@example.com")
      const { runId } = yield* startRun("create_order", input, { requested: true })
      const done = yield* settled(runId)
      assert.strictEqual(done.status, "completed")
      assert.strictEqual(done.attempts, 1)
      const before = yield* subjects(runId)

      // What the host does with a late `Start` carrying the same `requested`: execute from an empty journal.
      const stale = RunJournal.requested(tenantId, runId, new RunEntity.RequestedRun({ workflow: "create_order", input, sessionId: null, userId: null }))
      const host: WorkflowExecutor.Host = { runner: "test:0", awaitSignal: () => Effect.never }
      const again = yield* WorkflowExecutor.execute(stale, host).pipe(Effect.either)
      assert.isTrue(Either.isLeft(again) && again.left._tag === "JournalConflict", String(again))

      const after = yield* settled(runId)
      assert.strictEqual(after.status, "completed")
      assert.strictEqual(after.attempts, 1)
      assert.deepStrictEqual(after.steps.map((s) => s.stepId), done.steps.map((s) => s.stepId))
      // The repeated first step met its idempotency key: one order, no second charge, no new events.
      const orders = yield* query((sql) => sql<{ n: string }>`SELECT count(*) AS n FROM orders WHERE created_by_run = ${runId}`)
      assert.strictEqual(Number(orders[0]?.n), 1)
      const charges = yield* query((sql) => sql<{ n: string }>`SELECT count(*) AS n FROM payment_charges WHERE customer = ${input.email}`)
      assert.strictEqual(Number(charges[0]?.n), 1)
      assert.deepStrictEqual(yield* subjects(runId), before)
    }).pipe(Effect.provide(JournalWriter.layer.pipe(Layer.provideMerge(Cluster)))))

  it.scoped("a workflow step runs its sub-workflow inline on the same journal; branch and on_error continue steer the run", () =>
    Effect.gen(function*() {
      plans.set("child", plan("child", [
        step("lookup", tool("orders.get", constant({ order_id: "missing" })), "answer", { onError: { _tag: "Continue" } }),
        step("answer", respond(value((s) => `child saw ${String(field(s.steps, "lookup", "code"))} for ${String(field(s.input, "topic"))}`)), undefined)
      ]))
      plans.set("parent", plan("parent", [
        step("pick", {
          _tag: "branch",
          branches: [{ when: value((s) => field(s.input, "message") === "orders"), next: "sub" }],
          otherwise: "plain"
        }, undefined),
        step("sub", { _tag: "workflow", workflow: "child", input: value((s) => ({ topic: field(s.input, "message") })) }, "done"),
        step("done", respond(value((s) => `parent relays: ${String(field(s.steps, "sub", "answer"))}`)), undefined),
        step("plain", respond(constant("no sub-workflow")), undefined)
      ]))
      const { runId } = yield* startRun("parent", { message: "orders", context: {} })
      const run = yield* settled(runId)
      assert.strictEqual(run.status, "completed")
      assert.deepStrictEqual(run.steps.map((s) => [s.stepId, s.status]), [
        ["pick", "completed"],
        ["sub/lookup", "failed"],
        ["sub/answer", "completed"],
        ["sub", "completed"],
        ["done", "completed"]
      ])
      const output = run.output as { answer: string; workflow: string }
      assert.strictEqual(output.answer, "parent relays: child saw tool_failed for orders")
      assert.strictEqual(output.workflow, "parent > child")

      const other = yield* startRun("parent", { message: "hello", context: {} })
      const plain = yield* settled(other.runId)
      assert.deepStrictEqual(plain.steps.map((s) => s.stepId), ["pick", "plain"])
    }).pipe(Effect.provide(Cluster)))

  it.scoped("a run that loops past the step limit stops with StepLimitExceeded", () =>
    Effect.gen(function*() {
      plans.set("loop", plan("loop", [
        step("again", { _tag: "branch", branches: [{ when: constant(true), next: "again" }], otherwise: undefined }, undefined)
      ]))
      const { runId } = yield* startRun("loop", { context: {} })
      const run = yield* settled(runId)
      assert.strictEqual(run.status, "failed")
      assert.match(run.error ?? "", /^step_limit_exceeded: run executed more than 200 steps/)
      assert.strictEqual(run.steps.length, 200)
    }).pipe(Effect.provide(Cluster)))
})
