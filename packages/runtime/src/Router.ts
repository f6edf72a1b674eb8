/**
 * Router v2: picks SLM_A, SLM_B or LLM for a request with tier `auto`, per tenant, in
 * microseconds and without I/O (a tenant's state is read from Postgres on its first decision,
 * kept in memory, and merged with the other nodes' at each flush).
 *
 * The value of starting on a tier is the expected objective with escalation — quality − λ·cost
 * (as a share of an LLM call) − a penalty per escalation — plus the bandit's learnt correction and
 * exploration bonus; the router takes the best tier. P(acceptable) comes from the calibrated
 * classifier (the tenant's own model when `tessera router train` stored one, else the node's).
 * The gateway does early exit and escalation: it stays on the decided tier when its answer passes
 * and escalates one tier at a time when it fails.
 *
 * Learning. The gateway's outcome (its own pass/escalation, cost) is the decision's first
 * reward. Later verdicts revise that reward (b += Δr·x, see RouterBandit): a workflow's
 * `validate` step (`observe`: fail → quality 0, repairs → escalation penalty) applies to the run's
 * latest routed decision not yet validated, and a user's rating of the run (`run_feedback`, +1 → 1,
 * −1 → 0 quality; a second rating replaces the first) to every decision of the run. Decisions are
 * keyed by the gateway request's idempotency key (`<run id>:<journal step id>`); the node keeps the
 * latest `tracked` of them in memory (oldest dropped first) and writes each to `router_decisions`
 * (features, decided and served tier, policy, outcome so far) at its next flush, so any node and a
 * restarted one can revise them: a verdict on a run the node does not hold is applied to those
 * rows at the flush, and pending feedback is claimed there (exactly once: the rows are locked).
 *
 * Nodes. LinUCB's A and b, the tier statistics, the vocabulary counts and the canary's outcome
 * sums are all sums (see RouterState), so every node learns into its in-memory state and a delta (what it learnt
 * since its last flush); every `flushInterval` and on shutdown it locks the tenant's `policy` row
 * (SELECT … FOR UPDATE), adds its delta (and its decision rows, verdicts and claimed feedback),
 * writes the sum and adopts it plus whatever it learnt meanwhile. Two nodes thus end with the sum
 * of both nodes' learning. A crash loses what the node learnt (and decided) since its last flush.
 *
 * Canary: `startCanary` puts a share of a tenant's traffic on another policy (λ), with a new id,
 * written at once. A request is on the canary when a hash of its text is below the share, against
 * the canary of the node's last merged state: the same request gets the same side on every node,
 * and a new canary or a rollback reaches every node at its next flush. When the canary's mean
 * reward falls more than `rollbackThreshold` below the control's after `canaryMinSamples`
 * outcomes on each side (judged on the node's view, and on the merged sums at each flush), it is
 * rolled back; a rollback is sticky in the merge (any node's rollback wins) until a new canary.
 * Outcome sums merge only into the canary (id) they were made under.
 *
 * State: `router_state` (one row per tenant and name: `policy` for the sums and the canary;
 * `classifier` for a trained model). Metrics: `router_decision_latency_ms` (histogram),
 * `router_decisions_total` by tier, `router_misroute_rate` (gauge per tenant: decided tier
 * failed), `router_expected_cost_usd_total` and `router_actual_cost_usd_total`.
 */
import { RouterDecision, Tier } from "@tessera/domain/Llm"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { randomUUID } from "node:crypto"
import { readFileSync } from "node:fs"
import { Database } from "./Database.js"
import * as RouterBandit from "./RouterBandit.js"
import * as RouterClassifier from "./RouterClassifier.js"
import * as RouterFeatures from "./RouterFeatures.js"
import { type Decision, type Outcome, RouterPort, type RouteRequest, type Verdict } from "./RouterPort.js"
import {
  addDelta,
  addRunning,
  addSums,
  adopt,
  type Canary,
  countWord,
  decodeStored,
  dropped,
  emptyDelta,
  emptyStats,
  emptyStored,
  isEmpty,
  maxVocabulary,
  mean,
  mergeCanary,
  persisted,
  type Policy,
  type Stored,
  type Sums,
  type TenantState
} from "./RouterState.js"

export type { Canary, Policy, TenantState } from "./RouterState.js"

export interface Options {
  /** Typical cost in USD of one request on each tier (from the tiers' prices). */
  readonly costs: Readonly<Record<Tier, number>>
  /** Typical latency in ms of each tier. */
  readonly latencies: Readonly<Record<Tier, number>>
  readonly policy: Policy
  /** The node's classifier for tenants without their own. */
  readonly classifier: RouterClassifier.Model
  readonly banditAlpha: number
  /** Canary rollback: mean-reward drop (canary below control) that triggers it. */
  readonly rollbackThreshold: number
  readonly canaryMinSamples: number
  /** How often a node merges what it learnt into the stored state and adopts the others'. */
  readonly flushInterval: Duration.DurationInput
  /** Decisions a node keeps in memory for the verdicts of their runs (the oldest go first). */
  readonly tracked: number
}

export const defaults: Options = {
  costs: { SLM_A: 0, SLM_B: 0.0002, LLM: 0.004 },
  latencies: { SLM_A: 5, SLM_B: 400, LLM: 1500 },
  policy: { lambda: 1, escalation: 0.05 },
  classifier: RouterClassifier.prior,
  banditAlpha: 0.1,
  rollbackThreshold: 0.1,
  canaryMinSamples: 50,
  flushInterval: Duration.seconds(5),
  tracked: 10_000
}

/** A `router_decisions` row. */
const DecisionRow = Schema.Struct({
  key: Schema.String,
  run_id: Schema.String,
  decided: Tier,
  tier: Tier,
  policy: Schema.Literal("control", "canary"),
  canary_id: Schema.NullOr(Schema.String),
  features: Schema.Array(Schema.Number),
  passed: Schema.Boolean,
  answered: Schema.Boolean,
  repairs: Schema.Number,
  cost_usd: Schema.Number,
  validated: Schema.Boolean,
  feedback: Schema.NullOr(Schema.Number)
})
const decodeDecisionRow = Schema.decodeUnknownEither(DecisionRow)
const decodeModel = Schema.decodeUnknownEither(RouterClassifier.Model)

const tierIndex: Record<Tier, number> = { SLM_A: 0, SLM_B: 1, LLM: 2 }
/** Verdicts a node queues per tenant for runs it does not hold, until its next flush. */
const maxQueuedVerdicts = 10_000

export const emptyState = (options: Options): TenantState => ({
  classifier: options.classifier,
  bandit: RouterBandit.make(3, RouterFeatures.dimension, options.banditAlpha),
  vocabulary: new Map(),
  stats: emptyStats(),
  canary: undefined,
  decisions: 0,
  misroutes: 0,
  scratch: new Float64Array(RouterFeatures.dimension),
  pending: emptyDelta()
})

const fnv = (text: string): number => {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193)
  return (h >>> 0) / 0xffffffff
}

const costShare = (options: Options, usd: number) => options.costs.LLM > 0 ? usd / options.costs.LLM : 0

/**
 * The expected objective of starting on tier `t` and escalating one tier at a time: quality
 * (the last tier always answers) − λ·expected cost share − escalation penalty × expected
 * escalations, with P(reaching tier k) = 1 − P(tier k−1 acceptable).
 */
export const expectedValue = (acceptance: readonly [number, number, number], t: number, options: Options, policy: Policy): number => {
  let cost = 0
  let escalations = 0
  for (let k = t; k < 3; k++) {
    const reach = k === t ? 1 : 1 - acceptance[k - 1]!
    cost += reach * options.costs[RouterClassifier.tiers[k]!]
    if (k < 2) escalations += 1 - acceptance[k]!
  }
  return 1 - policy.lambda * costShare(options, cost) - policy.escalation * escalations
}

/** The decision for a request on a tenant's state (pure but for the vocabulary it records). */
export const decideWith = (state: TenantState, request: Omit<RouteRequest, "tenantId">, options: Options): Decision => {
  const x = RouterFeatures.extractFeatures(request, {
    vocabulary: state.vocabulary,
    slmA: state.stats.SLM_A,
    slmB: state.stats.SLM_B
  })
  const canary = state.canary?.status === "running" && fnv(request.text) < state.canary.share ? state.canary : undefined
  const policy = canary?.policy ?? options.policy
  const acceptance = RouterClassifier.acceptance(RouterClassifier.probabilities(state.classifier, x))
  let best = 0
  let bestValue = -Infinity
  for (let t = 0; t < 3; t++) {
    const { bonus, mean } = RouterBandit.score(state.bandit, t, x, state.scratch)
    const value = expectedValue(acceptance, t, options, policy) + mean + bonus
    if (value > bestValue + 1e-12) {
      best = t
      bestValue = value
    }
  }
  for (const w of RouterFeatures.words(request.text)) {
    if (state.vocabulary.size < maxVocabulary || state.vocabulary.has(w)) {
      countWord(state.vocabulary, w, 1)
      countWord(state.pending.vocabulary, w, 1)
    }
  }
  const tier = RouterClassifier.tiers[best]!
  const top = RouterFeatures.names
    .map((name, i) => ({ name, v: x[i]! }))
    .filter((f) => f.name !== "bias" && f.v >= 0.5 && !f.name.startsWith("failure"))
    .map((f) => f.name)
    .slice(0, 4)
  return {
    decision: new RouterDecision({
      tier,
      confidence: Math.round(acceptance[best]! * 1000) / 1000,
      reasoning: `${tier}: P(acceptable) ${acceptance.map((a) => a.toFixed(2)).join("/")} for SLM_A/SLM_B/LLM, λ ${policy.lambda}` +
        `${top.length === 0 ? "" : `; signals: ${top.join(", ")}`}${canary === undefined ? "" : "; canary policy"}`,
      cost_estimate: options.costs[tier],
      latency_estimate: options.latencies[tier]
    }),
    features: x,
    policy: canary === undefined ? "control" : "canary"
  }
}

/** What the reward of a decision is computed from. */
export interface Judged {
  /** The decided tier. */
  readonly decided: Tier
  /** The tier that served the request (after any escalation). */
  readonly tier: Tier
  /** The final answer was acceptable (the gateway's view, or the validation's). */
  readonly answered: boolean
  readonly repairs: number
  readonly costUsd: number
  /** A user's rating of the run: +1 / -1; it decides the quality when given. */
  readonly feedback?: number | undefined
}

/** The objective of an outcome: final quality (or feedback) − λ·cost share − penalty per escalation and repair. */
export const reward = (judged: Judged, options: Options, policy: Policy): number => {
  const quality = judged.feedback !== undefined ? (judged.feedback > 0 ? 1 : 0) : judged.answered ? 1 : 0
  const escalations = Math.max(0, tierIndex[judged.tier] - tierIndex[judged.decided]) + Math.max(0, judged.repairs)
  return quality - policy.lambda * Math.min(2, costShare(options, judged.costUsd)) - policy.escalation * escalations
}

const policyOf = (state: TenantState, side: "control" | "canary", options: Options): Policy =>
  side === "canary" && state.canary !== undefined ? state.canary.policy : options.policy

/** Adds `reward` to a side of the running canary, on the node's view and in its delta; answers whether that rolled it back. */
const onCanary = (state: TenantState, side: "control" | "canary", n: number, reward: number, options: Options): boolean => {
  const canary = state.canary
  if (canary === undefined || canary.status !== "running") return false
  if (state.pending.canary?.id !== canary.id) {
    state.pending.canary = { id: canary.id, control: { n: 0, total: 0 }, canary: { n: 0, total: 0 }, rolledBack: false }
  }
  const pending = state.pending.canary
  addRunning(canary[side], { n, total: reward })
  addRunning(pending[side], { n, total: reward })
  if (!dropped(canary, options)) return false
  canary.status = "rolled_back"
  pending.rolledBack = true
  return true
}

/** Learns from an outcome; answers whether a canary was rolled back by it. */
export const learn = (state: TenantState, outcome: Omit<Outcome, "tenantId">, options: Options): boolean => {
  const decided = outcome.decided.decision.tier
  const arm = tierIndex[decided]
  const policy = policyOf(state, outcome.decided.policy, options)
  const r = reward({ decided, tier: outcome.tier, answered: outcome.answered, repairs: outcome.repairs, costUsd: outcome.costUsd }, options, policy)
  const acceptance = RouterClassifier.acceptance(RouterClassifier.probabilities(state.classifier, outcome.decided.features))
  const residual = r - expectedValue(acceptance, arm, options, policy)
  RouterBandit.update(state.bandit, arm, outcome.decided.features, residual)
  RouterBandit.observe(state.pending.bandit, arm, outcome.decided.features, residual)
  for (const sums of [state, state.pending]) {
    sums.stats[decided].n++
    sums.decisions++
    if (!outcome.passed) {
      sums.stats[decided].failures++
      sums.misroutes++
    }
  }
  return onCanary(state, outcome.decided.policy, 1, r, options)
}

/** A routed decision and its outcome so far, as `router_decisions` keeps it. */
export interface Tracked extends Judged {
  readonly key: string
  readonly runId: string
  readonly policy: "control" | "canary"
  readonly canaryId: string | undefined
  readonly features: ReadonlyArray<number>
  /** The decided tier's answer passed (no escalation, no failed validation). */
  readonly passed: boolean
  readonly validated: boolean
  readonly feedback: number | undefined
}

/** What a verdict changes in a decision. */
type Change = Partial<Pick<Tracked, "passed" | "answered" | "repairs" | "validated" | "feedback">>

const validation = (decision: Tracked, verdict: Omit<Verdict, "tenantId" | "runId">): Change => ({
  validated: true,
  answered: decision.answered && verdict.passed,
  passed: decision.passed && (verdict.passed || decision.tier !== decision.decided),
  repairs: Math.max(decision.repairs, verdict.repairs)
})

/**
 * Applies a verdict to a decision: its reward changes by Δr, which revises the bandit's
 * observation (b += Δr·x) in each of `targets`, and a decided tier found failing counts as a
 * failure and a misroute. Answers the revised decision and Δr (the caller adds Δr to the canary).
 */
const revise = (decision: Tracked, change: Change, policy: Policy, options: Options, targets: ReadonlyArray<Sums>): [Tracked, number] => {
  const next: Tracked = { ...decision, ...change }
  const delta = reward(next, options, policy) - reward(decision, options, policy)
  const arm = tierIndex[decision.decided]
  for (const sums of targets) {
    if (delta !== 0) RouterBandit.reinforce(sums.bandit, arm, decision.features, delta)
    if (decision.passed && !next.passed) {
      sums.stats[decision.decided].failures++
      sums.misroutes++
    }
  }
  return [next, delta]
}

const trackedOfRow = (row: typeof DecisionRow.Type): Tracked => ({
  key: row.key,
  runId: row.run_id,
  decided: row.decided,
  tier: row.tier,
  policy: row.policy,
  canaryId: row.canary_id ?? undefined,
  features: row.features,
  passed: row.passed,
  answered: row.answered,
  repairs: row.repairs,
  costUsd: row.cost_usd,
  validated: row.validated,
  feedback: row.feedback ?? undefined
})

const rowOf = (tenantId: string, d: Tracked) => ({
  tenant_id: tenantId,
  key: d.key,
  run_id: d.runId,
  decided: d.decided,
  tier: d.tier,
  policy: d.policy,
  canary_id: d.canaryId ?? null,
  features: JSON.stringify(d.features),
  passed: d.passed,
  answered: d.answered,
  repairs: d.repairs,
  cost_usd: d.costUsd,
  validated: d.validated,
  feedback: d.feedback ?? null
})

/** The run of a gateway request's idempotency key (`<run id>:<journal step id>`); none for other keys. */
const runOf = (key: string): string | undefined => {
  const cut = key.indexOf(":")
  return cut > 0 ? key.slice(0, cut) : undefined
}

/** The router's metrics (exported for /metrics readers and tests). */
export const latency = Metric.histogram(
  "router_decision_latency_ms",
  MetricBoundaries.exponential({ start: 0.001, factor: 2, count: 16 }),
  "Time the router takes to decide a tier, in ms"
)
const decisionsTotal = Metric.counter("router_decisions_total", { description: "Router decisions by tier", incremental: true })
export const misrouteRate = Metric.gauge("router_misroute_rate", { description: "Share of a tenant's decisions whose tier failed and escalated" })
const expectedCost = Metric.counter("router_expected_cost_usd_total", { description: "Cost the router expected for its decisions" })
const actualCost = Metric.counter("router_actual_cost_usd_total", { description: "Cost the decisions actually had, escalations included" })
const rollbacks = Metric.counter("router_canary_rollbacks_total", { incremental: true })

export interface Service extends Context.Tag.Service<RouterPort> {
  /** Puts `share` of the tenant's traffic on `policy` until it is rolled back or replaced. */
  readonly startCanary: (tenantId: string, policy: Policy, share: number) => Effect.Effect<void>
  /** Stores a trained classifier as the tenant's own. */
  readonly saveClassifier: (tenantId: string, model: RouterClassifier.Model) => Effect.Effect<void>
  /** The tenant's state (loaded if needed); for inspection and tests. */
  readonly state: (tenantId: string) => Effect.Effect<TenantState>
  /** Merges what this node learnt into the stored state of each tenant it holds (what the periodic flush does). */
  readonly flush: Effect.Effect<void>
}

/** The router; it flushes every `flushInterval` and when the scope closes. */
export const make = (options: Options): Effect.Effect<Service, never, Database | Scope.Scope> =>
  Effect.gen(function*() {
    const db = yield* Database
    const sql = db.sql
    const tenants = new Map<string, TenantState>()
    /** Decisions held for verdicts, by `tenant \0 key`, oldest first. */
    const tracked = new Map<string, Tracked>()
    /** Their keys by `tenant \0 run`, in decision order. */
    const runs = new Map<string, Array<string>>()
    /** Decisions to write (or rewrite) at the next flush, by tenant and key. */
    const unwritten = new Map<string, Map<string, Tracked>>()
    /** Verdicts on runs this node holds no decision of, by tenant: applied to the stored decisions at the next flush. */
    const queued = new Map<string, Array<Verdict>>()
    const flushing = yield* Effect.makeSemaphore(1)

    const storedOf = (tenantId: string, value: unknown): Effect.Effect<Stored> =>
      Effect.gen(function*() {
        if (value === undefined) return emptyStored()
        const decoded = decodeStored(value)
        if (Either.isRight(decoded)) return decoded.right
        yield* Effect.logWarning(`router policy state ignored: ${decoded.left}`).pipe(Effect.annotateLogs("tenant_id", tenantId))
        return emptyStored()
      })

    const load = (tenantId: string): Effect.Effect<TenantState> =>
      Effect.gen(function*() {
        const state = emptyState(options)
        const rows = yield* db.tenant(tenantId)(sql<{ readonly name: string; readonly state: unknown }>`SELECT name, state FROM router_state WHERE tenant_id = ${tenantId}`).pipe(
          Effect.catchAll((error) => Effect.as(Effect.logWarning(`router state unreadable: ${error.message}`), []))
        )
        for (const row of rows) {
          if (row.name === "classifier") {
            const model = decodeModel(row.state)
            if (Either.isRight(model) && model.right.features.join() === RouterFeatures.names.join()) state.classifier = model.right
            else yield* Effect.logWarning("router classifier ignored: it does not match this build's features")
          }
          if (row.name === "policy") adopt(state, yield* storedOf(tenantId, row.state))
        }
        return state
      }).pipe(Effect.annotateLogs("tenant_id", tenantId))

    const stateOf = (tenantId: string): Effect.Effect<TenantState> =>
      Effect.suspend(() => {
        const known = tenants.get(tenantId)
        if (known !== undefined) return Effect.succeed(known)
        return Effect.map(load(tenantId), (loaded) => {
          // A concurrent first decision may have loaded it too: keep the first.
          const first = tenants.get(tenantId) ?? loaded
          tenants.set(tenantId, first)
          return first
        })
      })

    const toWrite = (tenantId: string, decision: Tracked) => {
      const writes = unwritten.get(tenantId) ?? new Map<string, Tracked>()
      writes.set(decision.key, decision)
      unwritten.set(tenantId, writes)
    }

    const track = (tenantId: string, decision: Tracked) => {
      const id = `${tenantId}\u0000${decision.key}`
      const run = `${tenantId}\u0000${decision.runId}`
      if (!tracked.has(id)) runs.set(run, [...(runs.get(run) ?? []), decision.key])
      tracked.set(id, decision)
      toWrite(tenantId, decision)
      for (const [oldest] of tracked) {
        if (tracked.size <= options.tracked) break
        const decisionOf = tracked.get(oldest)!
        tracked.delete(oldest)
        const tenant = oldest.slice(0, oldest.indexOf("\u0000"))
        const runKey = `${tenant}\u0000${decisionOf.runId}`
        const keys = (runs.get(runKey) ?? []).filter((k) => k !== decisionOf.key)
        if (keys.length === 0) runs.delete(runKey)
        else runs.set(runKey, keys)
      }
    }

    const setMisrouteRate = (tenantId: string, state: TenantState) =>
      Metric.set(Metric.tagged(misrouteRate, "tenant", tenantId), state.misroutes / Math.max(1, state.decisions))

    const rolledBack = (tenantId: string, canary: Canary) =>
      Effect.zipRight(
        Metric.update(Metric.tagged(rollbacks, "tenant", tenantId), 1),
        Effect.logWarning(`router canary rolled back: mean reward ${mean(canary.canary).toFixed(3)} against ${mean(canary.control).toFixed(3)}`).pipe(
          Effect.annotateLogs("tenant_id", tenantId)
        )
      )

    /** The canary side a revised decision's Δr goes to: only the canary (id) it was made under, while it runs. */
    const canarySide = (state: TenantState, decision: Tracked) =>
      state.canary !== undefined && state.canary.status === "running" && decision.canaryId === state.canary.id ? decision.policy : undefined

    /**
     * One tenant's flush, in one transaction on its locked `policy` row: the node's decisions are
     * written, queued verdicts and pending feedback applied to the stored decisions, the delta and
     * those revisions added to the stored sums (and `replaceCanary` set), and the sum adopted.
     * On failure nothing is lost: the delta, decisions and verdicts wait for the next flush.
     */
    const flushTenant = (tenantId: string, state: TenantState, replaceCanary?: Canary): Effect.Effect<void> =>
      Effect.gen(function*() {
        const delta = state.pending
        state.pending = emptyDelta()
        const writes = [...(unwritten.get(tenantId)?.values() ?? [])]
        unwritten.delete(tenantId)
        const verdicts = queued.get(tenantId) ?? []
        queued.delete(tenantId)
        const result = yield* db.tenant(tenantId)(Effect.gen(function*() {
          yield* sql`
            INSERT INTO router_state (tenant_id, name, state)
            VALUES (${tenantId}, 'policy', ${JSON.stringify(persisted(emptyStored()))}::jsonb)
            ON CONFLICT (tenant_id, name) DO NOTHING`
          const rows = yield* sql<{ readonly state: unknown }>`SELECT state FROM router_state WHERE tenant_id = ${tenantId} AND name = 'policy' FOR UPDATE`
          const stored = yield* storedOf(tenantId, rows[0]?.state)
          if (writes.length > 0) {
            yield* sql`INSERT INTO router_decisions ${sql.insert(writes.map((d) => rowOf(tenantId, d)))}
              ON CONFLICT (tenant_id, key) DO UPDATE SET passed = EXCLUDED.passed, answered = EXCLUDED.answered,
                repairs = EXCLUDED.repairs, validated = EXCLUDED.validated, feedback = EXCLUDED.feedback`
          }
          const revisions = emptyDelta()
          const revised = new Map<string, Tracked>()
          const canaryDeltas: Array<readonly [id: string, side: "control" | "canary", delta: number]> = []
          const apply = (decision: Tracked, change: Change) => {
            const side = canarySide(state, decision)
            const [next, dr] = revise(decision, change, policyOf(state, decision.policy, options), options, [revisions])
            if (side !== undefined && decision.canaryId !== undefined && dr !== 0) canaryDeltas.push([decision.canaryId, side, dr])
            revised.set(next.key, next)
          }
          const decisionsOf = (runIds: ReadonlyArray<string>) =>
            runIds.length === 0
              ? Effect.succeed([])
              : Effect.map(
                sql<object>`
                  SELECT key, run_id, decided, tier, policy, canary_id, features, passed, answered, repairs, cost_usd, validated, feedback
                  FROM router_decisions WHERE tenant_id = ${tenantId} AND run_id IN ${sql.in(runIds)} ORDER BY created_at, key FOR UPDATE`,
                (rows) => rows.flatMap((row) => Either.getOrElse(Either.map(decodeDecisionRow(row), (r) => [trackedOfRow(r)]), () => []))
                  .filter((d) => d.features.length === RouterFeatures.dimension)
              )
          // Validations of runs this node did not decide for (a run moved or the node restarted).
          const onRows = yield* decisionsOf([...new Set(verdicts.map((v) => v.runId))])
          for (const verdict of verdicts) {
            let latest: Tracked | undefined
            for (const row of onRows) {
              const current = revised.get(row.key) ?? row
              if (row.runId === verdict.runId && !current.validated) latest = current
            }
            if (latest !== undefined) apply(latest, validation(latest, verdict))
          }
          // Feedback: claimed once (the rows are locked), and applied to every decision of the run,
          // including decisions written now by a node that had not flushed when it was claimed.
          const claimed = yield* sql<{ readonly run_id: string; readonly rating: number }>`
            UPDATE run_feedback SET pending = false WHERE tenant_id = ${tenantId} AND pending RETURNING run_id, rating`
          const written = [...new Set(writes.map((d) => d.runId))]
          const rated = written.length === 0
            ? []
            : yield* sql<{ readonly run_id: string; readonly rating: number }>`SELECT run_id, rating FROM run_feedback WHERE tenant_id = ${tenantId} AND run_id IN ${sql.in(written)}`
          const ratings = new Map([...rated, ...claimed].map((r) => [r.run_id, r.rating]))
          for (const row of yield* decisionsOf([...ratings.keys()])) {
            const current = revised.get(row.key) ?? row
            const rating = ratings.get(row.runId)
            if (current.feedback !== rating) apply(current, { feedback: rating })
          }
          if (revised.size > 0) {
            yield* sql`INSERT INTO router_decisions ${sql.insert([...revised.values()].map((d) => rowOf(tenantId, d)))}
              ON CONFLICT (tenant_id, key) DO UPDATE SET passed = EXCLUDED.passed, answered = EXCLUDED.answered,
                repairs = EXCLUDED.repairs, validated = EXCLUDED.validated, feedback = EXCLUDED.feedback`
          }
          const canary = stored.canary
          if (canary !== undefined && canary.status === "running") {
            for (const [id, side, dr] of canaryDeltas) if (id === canary.id) canary[side].total += dr
          }
          const merged = mergeCanary(stored, delta, options)
          if (isEmpty(delta) && revised.size === 0 && replaceCanary === undefined && !merged) return { stored, revised, merged }
          addSums(stored, delta)
          addSums(stored, revisions)
          if (replaceCanary !== undefined) stored.canary = replaceCanary
          yield* sql`UPDATE router_state SET state = ${JSON.stringify(persisted(stored))}::jsonb, version = version + 1, updated_at = now()
            WHERE tenant_id = ${tenantId} AND name = 'policy'`
          return { stored, revised, merged }
        })).pipe(Effect.either)
        if (Either.isLeft(result)) {
          addDelta(state.pending, delta)
          for (const decision of writes) if (!unwritten.get(tenantId)?.has(decision.key)) toWrite(tenantId, decision)
          queued.set(tenantId, [...verdicts, ...(queued.get(tenantId) ?? [])].slice(-maxQueuedVerdicts))
          return yield* Effect.logWarning(`router state not flushed: ${result.left.message}`).pipe(Effect.annotateLogs("tenant_id", tenantId))
        }
        const { merged, revised, stored } = result.right
        for (const decision of revised.values()) {
          const id = `${tenantId}\u0000${decision.key}`
          if (tracked.has(id)) tracked.set(id, decision)
        }
        adopt(state, stored)
        yield* setMisrouteRate(tenantId, state)
        if (merged && stored.canary !== undefined) yield* rolledBack(tenantId, stored.canary)
      })

    const flush = flushing.withPermits(1)(
      Effect.suspend(() => Effect.forEach([...tenants.entries()], ([tenantId, state]) => flushTenant(tenantId, state), { discard: true }))
    )

    const decide = (request: RouteRequest): Effect.Effect<Decision> =>
      Effect.gen(function*() {
        const state = yield* stateOf(request.tenantId)
        const start = yield* Clock.currentTimeNanos
        const decided = decideWith(state, request, options)
        const end = yield* Clock.currentTimeNanos
        yield* Metric.update(latency, Number(end - start) / 1e6)
        yield* Metric.update(Metric.tagged(Metric.tagged(decisionsTotal, "tenant", request.tenantId), "tier", decided.decision.tier), 1)
        yield* Metric.update(Metric.tagged(expectedCost, "tenant", request.tenantId), decided.decision.cost_estimate)
        return decided
      })

    const record = (outcome: Outcome): Effect.Effect<void> =>
      Effect.gen(function*() {
        const state = yield* stateOf(outcome.tenantId)
        const canaryId = state.canary?.status === "running" ? state.canary.id : undefined
        const rolled = learn(state, outcome, options)
        yield* setMisrouteRate(outcome.tenantId, state)
        yield* Metric.update(Metric.tagged(actualCost, "tenant", outcome.tenantId), outcome.costUsd)
        if (rolled && state.canary !== undefined) yield* rolledBack(outcome.tenantId, state.canary)
        const runId = outcome.key === undefined ? undefined : runOf(outcome.key)
        if (outcome.key === undefined || runId === undefined) return
        track(outcome.tenantId, {
          key: outcome.key,
          runId,
          decided: outcome.decided.decision.tier,
          tier: outcome.tier,
          policy: outcome.decided.policy,
          canaryId,
          features: outcome.decided.features,
          passed: outcome.passed,
          answered: outcome.answered,
          repairs: outcome.repairs,
          costUsd: outcome.costUsd,
          validated: false,
          feedback: undefined
        })
      })

    const observe = (verdict: Verdict): Effect.Effect<void> =>
      Effect.gen(function*() {
        const state = yield* stateOf(verdict.tenantId)
        const keys = runs.get(`${verdict.tenantId}\u0000${verdict.runId}`)
        if (keys === undefined) {
          const waiting = queued.get(verdict.tenantId) ?? []
          waiting.push(verdict)
          queued.set(verdict.tenantId, waiting.slice(-maxQueuedVerdicts))
          return
        }
        let latest: Tracked | undefined
        for (const key of keys) {
          const decision = tracked.get(`${verdict.tenantId}\u0000${key}`)
          if (decision !== undefined && !decision.validated) latest = decision
        }
        if (latest === undefined) return
        const side = canarySide(state, latest)
        const [next, dr] = revise(latest, validation(latest, verdict), policyOf(state, latest.policy, options), options, [state, state.pending])
        if (side !== undefined && dr !== 0 && onCanary(state, side, 0, dr, options) && state.canary !== undefined) {
          yield* rolledBack(verdict.tenantId, state.canary)
        }
        tracked.set(`${verdict.tenantId}\u0000${next.key}`, next)
        toWrite(verdict.tenantId, next)
        yield* setMisrouteRate(verdict.tenantId, state)
      })

    const startCanary = (tenantId: string, policy: Policy, share: number) =>
      Effect.gen(function*() {
        const state = yield* stateOf(tenantId)
        const canary: Canary = {
          id: randomUUID(),
          policy,
          share: Math.min(1, Math.max(0, share)),
          control: { n: 0, total: 0 },
          canary: { n: 0, total: 0 },
          status: "running"
        }
        yield* flushing.withPermits(1)(flushTenant(tenantId, state, canary))
      })

    const saveClassifier = (tenantId: string, model: RouterClassifier.Model) =>
      Effect.gen(function*() {
        const state = yield* stateOf(tenantId)
        state.classifier = model
        yield* db.tenant(tenantId)(sql`
          INSERT INTO router_state (tenant_id, name, state)
          VALUES (${tenantId}, 'classifier', ${JSON.stringify(model)}::jsonb)
          ON CONFLICT (tenant_id, name)
          DO UPDATE SET state = EXCLUDED.state, version = router_state.version + 1, updated_at = now()`).pipe(
          Effect.asVoid,
          Effect.catchAll((error) => Effect.logWarning(`router classifier not saved: ${error.message}`).pipe(Effect.annotateLogs("tenant_id", tenantId)))
        )
      })

    yield* Effect.addFinalizer(() => flush)
    yield* Effect.forkScoped(Effect.forever(Effect.zipRight(Effect.sleep(options.flushInterval), flush)))

    return { decide, record, observe, startCanary, saveClassifier, state: stateOf, flush }
  })

/**
 * `ROUTER_LAMBDA` (1), `ROUTER_ESCALATION_PENALTY` (0.05), `ROUTER_COST_SLM_A|SLM_B|LLM` (typical USD per request; defaults 0,
 * 0.0002, 0.004), `ROUTER_CANARY_ROLLBACK` (0.1), `ROUTER_CANARY_MIN_SAMPLES` (50), `ROUTER_FLUSH_INTERVAL` (5 seconds),
 * `ROUTER_MODEL` (a model file written by `tessera router train`; default: the built-in prior).
 */
export const settings: Config.Config<Options> = Config.all({
  lambda: Config.number("ROUTER_LAMBDA").pipe(Config.withDefault(defaults.policy.lambda)),
  escalation: Config.number("ROUTER_ESCALATION_PENALTY").pipe(Config.withDefault(defaults.policy.escalation)),
  slmA: Config.number("ROUTER_COST_SLM_A").pipe(Config.withDefault(defaults.costs.SLM_A)),
  slmB: Config.number("ROUTER_COST_SLM_B").pipe(Config.withDefault(defaults.costs.SLM_B)),
  llm: Config.number("ROUTER_COST_LLM").pipe(Config.withDefault(defaults.costs.LLM)),
  rollback: Config.number("ROUTER_CANARY_ROLLBACK").pipe(Config.withDefault(defaults.rollbackThreshold)),
  minSamples: Config.integer("ROUTER_CANARY_MIN_SAMPLES").pipe(Config.withDefault(defaults.canaryMinSamples)),
  flushInterval: Config.duration("ROUTER_FLUSH_INTERVAL").pipe(Config.withDefault(Duration.decode(defaults.flushInterval)))
}).pipe(Config.map((c): Options => ({
  ...defaults,
  costs: { SLM_A: c.slmA, SLM_B: c.slmB, LLM: c.llm },
  policy: { lambda: c.lambda, escalation: c.escalation },
  rollbackThreshold: c.rollback,
  canaryMinSamples: c.minSamples,
  flushInterval: c.flushInterval
})))

/** Reads a model file written by `tessera router train`. */
export const readModel = (json: string): Either.Either<RouterClassifier.Model, string> =>
  Either.mapLeft(Schema.decodeUnknownEither(Schema.parseJson(RouterClassifier.Model))(json), (e) => `not a router model: ${e.message}`)

export class Router extends Context.Tag("@tessera/runtime/Router")<Router, Service>() {}

/** The router (also as the gateway's `RouterPort`) with these options; it flushes when the layer is released. */
export const layerWith = (options: Options): Layer.Layer<Router | RouterPort, never, Database> =>
  Layer.scopedContext(Effect.map(make(options), (service) => Context.make(Router, service).pipe(Context.add(RouterPort, service))))

/**
 * The router from `settings` and the `ROUTER_MODEL` file when set; `costs` (the tiers' typical
 * costs from the gateway's routes) replaces the `ROUTER_COST_*` values when given.
 */
export const layerConfig = (costs?: Readonly<Record<Tier, number>>): Layer.Layer<Router | RouterPort, ConfigError.ConfigError, Database> =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const configured = yield* settings
    const options = costs === undefined ? configured : { ...configured, costs }
    const file = yield* Config.option(Config.string("ROUTER_MODEL"))
    if (Option.isNone(file)) return layerWith(options)
    const model = yield* Effect.try(() => readFileSync(file.value, "utf8")).pipe(
      Effect.mapError((e) => ConfigError.InvalidData(["ROUTER_MODEL"], `cannot read ${file.value}: ${String(e)}`)),
      Effect.flatMap((json) => Either.mapLeft(readModel(json), (why) => ConfigError.InvalidData(["ROUTER_MODEL"], why)))
    )
    return layerWith({ ...options, classifier: model })
  }))
