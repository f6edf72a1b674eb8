import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import { assert, describe, it } from "@effect/vitest"
import { GenerateRequest, LlmMessage } from "@tessera/domain/Llm"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as TestClock from "effect/TestClock"
import { readFileSync } from "node:fs"
import { Database } from "../src/Database.js"
import * as LlmGatewayLive from "../src/LlmGatewayLive.js"
import * as LlmRoutes from "../src/LlmRoutes.js"
import * as OpenAiProvider from "../src/OpenAiProvider.js"
import * as Router from "../src/Router.js"
import * as RouterBandit from "../src/RouterBandit.js"
import * as RouterClassifier from "../src/RouterClassifier.js"
import * as RouterEval from "../src/RouterEval.js"
import * as RouterFeatures from "../src/RouterFeatures.js"
import type { Decision } from "../src/RouterPort.js"
import * as TestDatabase from "../src/TestDatabase.js"
import { chatCompletion, serve } from "./LlmServers.js"

const feature = (x: ReadonlyArray<number>, name: (typeof RouterFeatures.names)[number]) => x[RouterFeatures.names.indexOf(name)]!
const none = { vocabulary: new Map<string, number>(), slmA: { n: 0, failures: 0 }, slmB: { n: 0, failures: 0 } }

const queries = Either.getOrThrow(RouterEval.parse(readFileSync(new URL("../../../test/fixtures/router/queries.jsonl", import.meta.url), "utf8")))

describe("Router (pure parts)", () => {
  it("extracts entities, domains, strictness and reasoning cues", () => {
    const order = RouterFeatures.extractFeatures({ text: "Where is my order #A-10442? I paid $49", strict: true, plan: "enterprise" }, none)
    assert.strictEqual(order.length, RouterFeatures.dimension)
    assert.deepStrictEqual(
      ["entity_order", "entity_amount", "domain_order", "strict", "plan", "reasoning"].map((n) => feature(order, n as (typeof RouterFeatures.names)[number])),
      [1, 1, 1, 1, 1, 0]
    )
    const tech = RouterFeatures.extractFeatures({ text: "Explain why our webhook returns 502 and compare retry strategies", strict: false, plan: undefined }, none)
    assert.strictEqual(feature(tech, "domain_technical"), 1)
    assert.strictEqual(feature(tech, "reasoning"), 1)
    assert.strictEqual(feature(tech, "code"), 1)
  })

  it("the classifier learns the cheapest acceptable tier with calibrated probabilities", () => {
    const xs = RouterEval.featuresOf(queries)
    const train = queries.map((q, i) => ({ x: xs[i]!, y: RouterEval.label(q) })).filter((_, i) => i % 3 !== 0)
    const test = queries.map((q, i) => ({ x: xs[i]!, y: RouterEval.label(q) })).filter((_, i) => i % 3 === 0)
    const model = RouterClassifier.train(train.slice(0, 160), train.slice(160))
    const predicted = test.map((e) => {
      const p = RouterClassifier.probabilities(model, e.x)
      return { k: p.indexOf(Math.max(...p)), confidence: Math.max(...p), y: e.y }
    })
    const accuracy = predicted.filter((p) => p.k === p.y).length / predicted.length
    const majority = Math.max(...[0, 1, 2].map((k) => test.filter((e) => e.y === k).length)) / test.length
    assert.isAbove(accuracy, majority + 0.15, `accuracy ${accuracy} against the majority class ${majority}`)
    const ece = RouterClassifier.expectedCalibrationError(predicted.map((p) => ({ confidence: p.confidence, correct: p.k === p.y })))
    assert.isBelow(ece, 0.12)
    assert.strictEqual(RouterClassifier.expectedCalibrationError([{ confidence: 0.9, correct: false }, { confidence: 0.9, correct: false }]), 0.9)
  })

  it("LinUCB learns which arm pays in a context", () => {
    const bandit = RouterBandit.make(2, 2, 0.1)
    const scratch = new Float64Array(2)
    const contexts = [[1, 0], [0, 1]] as const
    for (let i = 0; i < 200; i++) {
      const x = contexts[i % 2]!
      // Arm 0 pays in the first context, arm 1 in the second.
      RouterBandit.update(bandit, 0, x, i % 2 === 0 ? 1 : 0)
      RouterBandit.update(bandit, 1, x, i % 2 === 0 ? 0 : 1)
    }
    const pick = (x: ReadonlyArray<number>) => [0, 1].map((a) => RouterBandit.score(bandit, a, x, scratch).mean).reduce((b, v, i, all) => (v > all[b]! ? i : b), 0)
    assert.strictEqual(pick(contexts[0]), 0)
    assert.strictEqual(pick(contexts[1]), 1)
    const restored = RouterBandit.make(2, 2, 0.1)
    RouterBandit.adopt(restored, RouterBandit.fromState(RouterBandit.toState(bandit)), RouterBandit.zero(2, 2))
    const [a, b] = [RouterBandit.score(restored, 1, contexts[1], scratch), RouterBandit.score(bandit, 1, contexts[1], scratch)]
    assert.approximately(a.mean, b.mean, 1e-9)
    assert.approximately(a.bonus, b.bonus, 1e-9)
  })

  it("LinUCB statistics are sums: two halves learnt apart and merged equal the whole learnt at once", () => {
    const xs = RouterEval.featuresOf(queries.slice(0, 40))
    const whole = RouterBandit.make(3, RouterFeatures.dimension, 0.1)
    const base = RouterBandit.initial(3, RouterFeatures.dimension)
    const halves = [RouterBandit.zero(3, RouterFeatures.dimension), RouterBandit.zero(3, RouterFeatures.dimension)]
    xs.forEach((x, i) => {
      RouterBandit.update(whole, i % 3, x, (i % 5) / 5 - 0.4)
      RouterBandit.observe(halves[i % 2]!, i % 3, x, (i % 5) / 5 - 0.4)
    })
    RouterBandit.add(base, halves[0]!)
    RouterBandit.add(base, halves[1]!)
    const merged = RouterBandit.make(3, RouterFeatures.dimension, 0.1)
    RouterBandit.adopt(merged, base, RouterBandit.zero(3, RouterFeatures.dimension))
    const scratch = new Float64Array(RouterFeatures.dimension)
    for (let arm = 0; arm < 3; arm++) {
      assert.strictEqual(merged.arms[arm]!.n, whole.arms[arm]!.n)
      for (const x of xs.slice(0, 5)) {
        const [m, w] = [RouterBandit.score(merged, arm, x, scratch), RouterBandit.score(whole, arm, x, scratch)]
        assert.approximately(m.mean, w.mean, 1e-9)
        assert.approximately(m.bonus, w.bonus, 1e-9)
      }
    }
  })

  it("on the shipped set, the router keeps always-LLM quality at a fraction of its cost, with less regret than fixed policies", () => {
    assert.isAtLeast(queries.length, 300)
    const report = RouterEval.evaluate(queries)
    assert.isAtLeast(report.qualityKept, 0.98)
    assert.isBelow(report.costRatio, 0.5)
    assert.isBelow(report.regret.at(-1)!.cumulative, report.baselines.cheapestFirst.regret)
    assert.isBelow(report.regret.at(-1)!.cumulative, report.baselines.alwaysLlm.regret)
    assert.isBelow(report.ece, 0.15)
    assert.strictEqual(report.regret.at(-1)!.at, queries.length)
  })
})

const options: Router.Options = { ...Router.defaults, canaryMinSamples: 20, flushInterval: Duration.seconds(5) }

/** The stored `policy` row of a tenant, as sums. */
const storedPolicy = (tenantId: string) =>
  Effect.gen(function*() {
    const db = yield* Database
    const rows = yield* db.tenant(tenantId)(db.sql<{ readonly state: Record<string, unknown> }>`SELECT state FROM router_state WHERE name = 'policy'`)
    return rows[0]?.state
  })

const banditOf = (state: Record<string, unknown> | undefined) =>
  Schema.decodeUnknownSync(Schema.Struct({ bandit: RouterBandit.State, decisions: Schema.Number }))(state)

/** Waits (on the database, never on the clock) until the stored state shows `decisions`. */
const storedDecisions = (tenantId: string, decisions: number) =>
  storedPolicy(tenantId).pipe(
    Effect.map((state) => (state === undefined ? -1 : banditOf(state).decisions)),
    Effect.repeat({ until: (n) => n === decisions, times: 2_000 })
  )

const ask = (tenantId: string, text: string) => ({ tenantId, text, strict: false, plan: "pro" })

describe("Router (per tenant, on Postgres)", () => {
  it.layer(TestDatabase.layer.pipe(Layer.orDie), { timeout: 60_000 })((it) => {
    it.scoped("decides in the seed's shape, learns from outcomes, and its state survives a restart per tenant", () =>
      Effect.gen(function*() {
        const router = yield* Router.make(options)
        const request = ask("acme", "Where is my order #A-10442?")
        const decided = yield* router.decide(request)
        assert.include(["SLM_A", "SLM_B", "LLM"], decided.decision.tier)
        assert.isAbove(decided.decision.confidence, 0)
        assert.isAtMost(decided.decision.confidence, 1)
        assert.include(decided.decision.reasoning, "P(acceptable)")
        assert.strictEqual(decided.decision.cost_estimate, options.costs[decided.decision.tier])
        assert.strictEqual(decided.decision.latency_estimate, options.latencies[decided.decision.tier])
        for (let i = 0; i < 5; i++) {
          yield* router.record({ tenantId: "acme", decided, tier: "LLM", passed: false, answered: true, repairs: 0, costUsd: 0.004 })
        }
        const latency = yield* Metric.value(Router.latency)
        assert.isAtLeast(latency.count, 1)
        const misroutes = yield* Metric.value(Metric.tagged(Router.misrouteRate, "tenant", "acme"))
        assert.strictEqual(misroutes.value, 1)
        const before = yield* router.state("acme")
        assert.strictEqual(before.stats[decided.decision.tier].failures, 5)
        yield* router.flush

        const restarted = yield* Router.make(options)
        const after = yield* restarted.state("acme")
        assert.deepStrictEqual(after.stats, before.stats)
        assert.deepStrictEqual(Array.from(after.bandit.arms[0]!.a), Array.from(before.bandit.arms[0]!.a))
        assert.deepStrictEqual(Array.from(after.bandit.arms[0]!.b), Array.from(before.bandit.arms[0]!.b))
        assert.strictEqual(after.vocabulary.get("order"), 1)
        const other = yield* restarted.state("globex")
        assert.strictEqual(other.decisions, 0)
        const db = yield* Database
        const rows = yield* db.tenant("globex")(db.sql`SELECT tenant_id FROM router_state`)
        assert.strictEqual(rows.length, 0)
      }))

    it.scoped("two routers on one database learning concurrently end with the sum of both nodes' updates, flushed on the interval", () =>
      Effect.gen(function*() {
        const nodes = [yield* Router.make(options), yield* Router.make(options)] as const
        const reference = Router.emptyState(options)
        const learn = (i: number) =>
          Effect.gen(function*() {
            const node = nodes[i % 2]!
            const decided = yield* node.decide(ask("sum-co", `question ${i} about invoice ${i * 7} and my parcel`))
            const outcome = { decided, tier: "LLM" as const, passed: i % 3 !== 0, answered: i % 4 !== 0, repairs: 0, costUsd: i % 2 === 0 ? 0.004 : 0.0002 }
            Router.learn(reference, outcome, options)
            yield* node.record({ tenantId: "sum-co", ...outcome })
          })
        yield* Effect.forEach(Array.from({ length: 30 }, (_, i) => i), learn, { concurrency: "unbounded", discard: true })
        // Not saved per decision: nothing is stored before the flush interval has passed.
        assert.isUndefined(yield* storedPolicy("sum-co"))
        yield* TestClock.adjust(Duration.seconds(5))
        assert.strictEqual(yield* storedDecisions("sum-co", 30), 30)

        yield* Effect.forEach(Array.from({ length: 30 }, (_, i) => i + 30), learn, { concurrency: "unbounded", discard: true })
        yield* Effect.all([nodes[0].flush, nodes[1].flush], { concurrency: 2 })
        // A node adopts the merged state at its own flush.
        yield* Effect.all([nodes[0].flush, nodes[1].flush])

        const stored = banditOf(yield* storedPolicy("sum-co"))
        assert.strictEqual(stored.decisions, 60)
        const expected = RouterBandit.initial(3, RouterFeatures.dimension)
        RouterBandit.add(expected, reference.pending.bandit)
        stored.bandit.arms.forEach((arm, k) => {
          assert.strictEqual(arm.n, expected.arms[k]!.n)
          arm.a.forEach((v, i) => assert.approximately(v, expected.arms[k]!.a[i]!, 1e-9))
          arm.b.forEach((v, i) => assert.approximately(v, expected.arms[k]!.b[i]!, 1e-9))
        })
        // Both nodes now decide on the same, merged state.
        for (const node of nodes) {
          const state = yield* node.state("sum-co")
          assert.strictEqual(state.decisions, 60)
          assert.deepStrictEqual(state.stats, reference.stats)
        }
      }))

    it.scoped("a validate failure lowers the decided tier's reward for that context, on the node that decided and on one that did not", () =>
      Effect.gen(function*() {
        const router = yield* Router.make(options)
        const scratch = new Float64Array(RouterFeatures.dimension)
        const meanOf = (state: Router.TenantState, decided: Decision) =>
          RouterBandit.score(state.bandit, RouterClassifier.tiers.indexOf(decided.decision.tier), decided.features, scratch).mean
        const decided = yield* router.decide(ask("valid-co", "Please send me the tracking link for order #B-2231"))
        yield* router.record({ tenantId: "valid-co", key: "run_v1:answer", decided, tier: decided.decision.tier, passed: true, answered: true, repairs: 0, costUsd: 0 })
        const state = yield* router.state("valid-co")
        const before = meanOf(state, decided)
        yield* router.observe({ tenantId: "valid-co", runId: "run_v1", passed: false, repairs: 0 })
        const after = meanOf(state, decided)
        assert.isBelow(after, before - 0.5, `${after} against ${before}`)
        assert.strictEqual(state.stats[decided.decision.tier].failures, 1)
        // A second validation of the same answer changes nothing more.
        yield* router.observe({ tenantId: "valid-co", runId: "run_v1", passed: false, repairs: 1 })
        assert.strictEqual(meanOf(state, decided), after)

        // Another run, decided here; its validation reaches a node that restarted.
        const other = yield* router.decide(ask("valid-co", "Please send me the tracking link for order #B-2232"))
        yield* router.record({ tenantId: "valid-co", key: "run_v2:answer", decided: other, tier: other.decision.tier, passed: true, answered: true, repairs: 0, costUsd: 0 })
        yield* router.flush
        const db = yield* Database
        const decisions = yield* db.tenant("valid-co")(db.sql<{ readonly key: string; readonly validated: boolean; readonly answered: boolean }>`
          SELECT key, validated, answered FROM router_decisions ORDER BY key`)
        assert.deepStrictEqual(decisions.map((d) => [d.key, d.validated, d.answered]), [["run_v1:answer", true, false], ["run_v2:answer", false, true]])

        const restarted = yield* Router.make(options)
        const fresh = yield* restarted.state("valid-co")
        const storedBefore = meanOf(fresh, other)
        yield* restarted.observe({ tenantId: "valid-co", runId: "run_v2", passed: false, repairs: 0 })
        yield* restarted.flush
        assert.isBelow(meanOf(fresh, other), storedBefore - 0.5)
        const third = yield* Router.make(options)
        assert.approximately(meanOf(yield* third.state("valid-co"), other), meanOf(fresh, other), 1e-9)
        assert.strictEqual((yield* third.state("valid-co")).misroutes, 2)
      }))

    it.scoped("a canary whose quality drops is rolled back, and the rollback persists", () =>
      Effect.gen(function*() {
        const router = yield* Router.make(options)
        yield* router.startCanary("canary-co", { lambda: 5, escalation: 0 }, 0.5)
        let canarySeen = 0
        for (let i = 0; i < 200 && (yield* router.state("canary-co")).canary?.status === "running"; i++) {
          const decided = yield* router.decide({ tenantId: "canary-co", text: `question number ${i} about my parcel`, strict: false, plan: undefined })
          const canary = decided.policy === "canary"
          if (canary) canarySeen++
          yield* router.record({ tenantId: "canary-co", decided, tier: decided.decision.tier, passed: !canary, answered: !canary, repairs: 0, costUsd: 0 })
        }
        assert.isAbove(canarySeen, 0)
        assert.strictEqual((yield* router.state("canary-co")).canary?.status, "rolled_back")
        yield* router.flush
        const restarted = yield* Router.make(options)
        assert.strictEqual((yield* restarted.state("canary-co")).canary?.status, "rolled_back")
        const next = yield* restarted.decide({ tenantId: "canary-co", text: "question number 3 about my parcel", strict: false, plan: undefined })
        assert.strictEqual(next.policy, "control")
      }))

    it.scoped("the gateway routes tier auto, escalates one tier at a time when an answer fails, and reports the outcome with its key", () =>
      Effect.gen(function*() {
        const { url, requests } = yield* serve(() => chatCompletion("Your parcel left our warehouse yesterday.", { prompt_tokens: 500, completion_tokens: 100 }))
        const router = yield* Router.make({ ...options, classifier: { ...RouterClassifier.prior, weights: [[5, ...new Array(RouterFeatures.dimension - 1).fill(0)], new Array(RouterFeatures.dimension).fill(0), new Array(RouterFeatures.dimension).fill(0)] } })
        const decisions: Array<Decision> = []
        const spy = {
          decide: (r: Parameters<typeof router.decide>[0]) => Effect.tap(router.decide(r), (d) => Effect.sync(() => decisions.push(d))),
          record: router.record,
          observe: router.observe
        }
        const openai = yield* OpenAiProvider.make({ baseUrl: `${url}/v1`, apiKey: Redacted.make("sk-x") }).pipe(Effect.provide(FetchHttpClient.layer))
        const llm = yield* LlmGatewayLive.make({
          ...LlmGatewayLive.defaults,
          routes: { SLM_A: [LlmRoutes.local], SLM_B: [LlmRoutes.local], LLM: Either.getOrThrow(LlmRoutes.parse("openai:gpt-4o-mini")) },
          providers: new Map([[openai.name, openai]]),
          cacheTtl: 0,
          timeout: Duration.hours(1),
          router: spy
        })
        const response = yield* llm.generate(
          new GenerateRequest({
            tenantId: "auto-co",
            tier: "auto",
            messages: [new LlmMessage({ role: "user", content: "where did my parcel go" })],
            idempotencyKey: "run_auto:llm"
          })
        )
        assert.strictEqual(decisions[0]!.decision.tier, "SLM_A") // the prior strongly prefers SLM_A
        assert.strictEqual(response.tier, "LLM") // the local model could not answer: SLM_A → SLM_B → LLM
        assert.strictEqual(response.provider, "openai")
        assert.strictEqual(requests.length, 1)
        assert.isAbove(response.usage.inputTokens, 500) // the local attempts are counted too
        assert.approximately(response.costUsd, 0.5 * 0.00015 + 0.1 * 0.0006, 1e-12)
        const state = yield* router.state("auto-co")
        assert.deepStrictEqual([state.stats.SLM_A.n, state.stats.SLM_A.failures, state.misroutes], [1, 1, 1])
        yield* router.flush
        const db = yield* Database
        const rows = yield* db.tenant("auto-co")(db.sql<{ readonly run_id: string; readonly decided: string; readonly tier: string }>`
          SELECT run_id, decided, tier FROM router_decisions`)
        assert.deepStrictEqual(rows.map((r) => [r.run_id, r.decided, r.tier]), [["run_auto", "SLM_A", "LLM"]])
      }))
  })
})
