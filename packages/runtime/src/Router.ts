/**
 * Router v2: picks SLM_A, SLM_B or LLM for a request with tier `auto`, per tenant, in
 * microseconds and without I/O (a tenant's state is read from Postgres once, on its first
 * decision, and kept in memory).
 *
 * The value of starting on a tier is the expected objective with escalation — quality − λ·cost
 * (as a share of an LLM call) − a penalty per escalation — plus the bandit's learnt correction and
 * exploration bonus; the router takes the best tier. P(acceptable) comes from the calibrated
 * classifier (the tenant's own model when `tessera router train` stored one, else the node's);
 * the bandit learns from each outcome (validation pass/fail, escalation, feedback, actual cost).
 * The gateway does early exit and escalation: it stays on the decided tier when its answer passes
 * and escalates one tier at a time when it fails.
 *
 * Canary: `startCanary` puts a share of a tenant's traffic on another policy (λ); when the
 * canary's mean reward falls more than `rollbackThreshold` below the control's after
 * `canaryMinSamples` outcomes, it is rolled back automatically.
 *
 * State (`router_state`, one row per tenant and name: `policy` for bandit, statistics, vocabulary
 * and canary; `classifier` for a trained model) is saved after each outcome and survives restarts.
 * Metrics: `router_decision_latency_ms` (histogram), `router_decisions_total` by tier,
 * `router_misroute_rate` (gauge per tenant: decided tier failed), `router_expected_cost_usd_total`
 * and `router_actual_cost_usd_total`.
 */
import { RouterDecision, type Tier } from "@tessera/domain/Llm"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { readFileSync } from "node:fs"
import { Database } from "./Database.js"
import * as RouterBandit from "./RouterBandit.js"
import * as RouterClassifier from "./RouterClassifier.js"
import * as RouterFeatures from "./RouterFeatures.js"
import { type Decision, type Outcome, RouterPort, type RouteRequest } from "./RouterPort.js"

export interface Policy {
  /** Weight of cost (as a share of an LLM call's) against quality in the objective. */
  readonly lambda: number
  /** Penalty of one escalation (a failed answer and its latency), in the same units. */
  readonly escalation: number
}

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
}

export const defaults: Options = {
  costs: { SLM_A: 0, SLM_B: 0.0002, LLM: 0.004 },
  latencies: { SLM_A: 5, SLM_B: 400, LLM: 1500 },
  policy: { lambda: 1, escalation: 0.05 },
  classifier: RouterClassifier.prior,
  banditAlpha: 0.1,
  rollbackThreshold: 0.1,
  canaryMinSamples: 50
}

interface Running {
  n: number
  reward: number
}

export interface Canary {
  readonly policy: Policy
  readonly share: number
  readonly control: Running
  readonly canary: Running
  status: "running" | "rolled_back"
}

/** A tenant's router state, in memory. */
export interface TenantState {
  classifier: RouterClassifier.Model
  readonly bandit: RouterBandit.Live
  readonly vocabulary: Map<string, number>
  readonly stats: Record<Tier, { n: number; failures: number }>
  canary: Canary | undefined
  decisions: number
  misroutes: number
  readonly scratch: Float64Array
}

const PersistedPolicy = Schema.Struct({
  bandit: RouterBandit.State,
  vocabulary: Schema.Array(Schema.Tuple(Schema.String, Schema.Number)),
  stats: Schema.Record({ key: Schema.String, value: Schema.Struct({ n: Schema.Number, failures: Schema.Number }) }),
  canary: Schema.optional(Schema.Struct({
    policy: Schema.Struct({ lambda: Schema.Number, escalation: Schema.Number }),
    share: Schema.Number,
    control: Schema.Struct({ n: Schema.Number, reward: Schema.Number }),
    canary: Schema.Struct({ n: Schema.Number, reward: Schema.Number }),
    status: Schema.Literal("running", "rolled_back")
  })),
  decisions: Schema.Number,
  misroutes: Schema.Number
})
const decodePolicy = Schema.decodeUnknownEither(PersistedPolicy)
const decodeModel = Schema.decodeUnknownEither(RouterClassifier.Model)

const tierIndex: Record<Tier, number> = { SLM_A: 0, SLM_B: 1, LLM: 2 }
const maxVocabulary = 5_000

export const emptyState = (options: Options): TenantState => ({
  classifier: options.classifier,
  bandit: RouterBandit.make(3, RouterFeatures.dimension, options.banditAlpha),
  vocabulary: new Map(),
  stats: { SLM_A: { n: 0, failures: 0 }, SLM_B: { n: 0, failures: 0 }, LLM: { n: 0, failures: 0 } },
  canary: undefined,
  decisions: 0,
  misroutes: 0,
  scratch: new Float64Array(RouterFeatures.dimension)
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
    if (state.vocabulary.size < maxVocabulary || state.vocabulary.has(w)) state.vocabulary.set(w, (state.vocabulary.get(w) ?? 0) + 1)
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

/** The objective of an outcome: final quality (and feedback) − λ·cost share − penalty per escalation and repair. */
export const reward = (outcome: Omit<Outcome, "tenantId">, options: Options, policy: Policy): number => {
  const quality = outcome.feedback !== undefined ? (outcome.feedback > 0 ? 1 : 0) : outcome.answered ? 1 : 0
  const escalations = Math.max(0, tierIndex[outcome.tier] - tierIndex[outcome.decided.decision.tier]) + Math.max(0, outcome.repairs)
  return quality - policy.lambda * Math.min(2, costShare(options, outcome.costUsd)) - policy.escalation * escalations
}

/** Learns from an outcome; answers whether a canary was rolled back by it. */
export const learn = (state: TenantState, outcome: Omit<Outcome, "tenantId">, options: Options): boolean => {
  const decided = outcome.decided.decision.tier
  const arm = tierIndex[decided]
  const policy = outcome.decided.policy === "canary" && state.canary !== undefined ? state.canary.policy : options.policy
  const r = reward(outcome, options, policy)
  const acceptance = RouterClassifier.acceptance(RouterClassifier.probabilities(state.classifier, outcome.decided.features))
  const expected = expectedValue(acceptance, arm, options, policy)
  RouterBandit.update(state.bandit, arm, outcome.decided.features, r - expected)
  state.stats[decided].n++
  if (!outcome.passed) state.stats[decided].failures++
  state.decisions++
  if (!outcome.passed) state.misroutes++
  const canary = state.canary
  if (canary === undefined || canary.status !== "running") return false
  const side = outcome.decided.policy === "canary" ? canary.canary : canary.control
  side.n++
  side.reward += (r - side.reward) / side.n
  if (
    canary.canary.n >= options.canaryMinSamples && canary.control.n >= options.canaryMinSamples &&
    canary.control.reward - canary.canary.reward > options.rollbackThreshold
  ) {
    canary.status = "rolled_back"
    return true
  }
  return false
}

const persisted = (state: TenantState): typeof PersistedPolicy.Type => ({
  bandit: RouterBandit.toState(state.bandit),
  vocabulary: [...state.vocabulary.entries()],
  stats: state.stats,
  ...(state.canary === undefined ? {} : { canary: state.canary }),
  decisions: state.decisions,
  misroutes: state.misroutes
})

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
}

export const make = (options: Options): Effect.Effect<Service, never, Database> =>
  Effect.gen(function*() {
    const db = yield* Database
    const tenants = new Map<string, TenantState>()

    const load = (tenantId: string): Effect.Effect<TenantState> =>
      Effect.gen(function*() {
        const state = emptyState(options)
        const rows = yield* db.tenant(tenantId)(db.sql<{ readonly name: string; readonly state: unknown }>`SELECT name, state FROM router_state`).pipe(
          Effect.catchAll((error) => Effect.as(Effect.logWarning(`router state unreadable: ${error.message}`), []))
        )
        for (const row of rows) {
          if (row.name === "classifier") {
            const model = decodeModel(row.state)
            if (Either.isRight(model) && model.right.features.join() === RouterFeatures.names.join()) state.classifier = model.right
            else yield* Effect.logWarning("router classifier ignored: it does not match this build's features")
          }
          if (row.name === "policy") {
            const policy = decodePolicy(row.state)
            if (Either.isLeft(policy)) {
              yield* Effect.logWarning("router policy state ignored: it does not match this build's format")
              continue
            }
            const p = policy.right
            const bandit = RouterBandit.fromState(p.bandit)
            if (bandit.arms.length === 3 && bandit.arms.every((a) => a.b.length === RouterFeatures.dimension)) state.bandit.arms.splice(0, 3, ...bandit.arms)
            for (const [w, n] of p.vocabulary) state.vocabulary.set(w, n)
            for (const tier of RouterClassifier.tiers) {
              const s = p.stats[tier]
              if (s !== undefined) state.stats[tier] = { n: s.n, failures: s.failures }
            }
            state.canary = p.canary === undefined
              ? undefined
              : { ...p.canary, control: { ...p.canary.control }, canary: { ...p.canary.canary } }
            state.decisions = p.decisions
            state.misroutes = p.misroutes
          }
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

    const save = (tenantId: string, name: string, value: unknown) =>
      db.tenant(tenantId)(db.sql`
        INSERT INTO router_state (tenant_id, name, state)
        VALUES (${tenantId}, ${name}, ${JSON.stringify(value)}::jsonb)
        ON CONFLICT (tenant_id, name)
        DO UPDATE SET state = EXCLUDED.state, version = router_state.version + 1, updated_at = now()`).pipe(
        Effect.asVoid,
        Effect.catchAll((error) => Effect.logWarning(`router state not saved: ${error.message}`).pipe(Effect.annotateLogs("tenant_id", tenantId)))
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
        const rolledBack = learn(state, outcome, options)
        yield* Metric.set(Metric.tagged(misrouteRate, "tenant", outcome.tenantId), state.misroutes / Math.max(1, state.decisions))
        yield* Metric.update(Metric.tagged(actualCost, "tenant", outcome.tenantId), outcome.costUsd)
        if (rolledBack) {
          yield* Metric.update(Metric.tagged(rollbacks, "tenant", outcome.tenantId), 1)
          yield* Effect.logWarning(
            `router canary rolled back: mean reward ${state.canary?.canary.reward.toFixed(3)} against ${state.canary?.control.reward.toFixed(3)}`
          ).pipe(Effect.annotateLogs("tenant_id", outcome.tenantId))
        }
        yield* save(outcome.tenantId, "policy", persisted(state))
      })

    const startCanary = (tenantId: string, policy: Policy, share: number) =>
      Effect.gen(function*() {
        const state = yield* stateOf(tenantId)
        state.canary = { policy, share: Math.min(1, Math.max(0, share)), control: { n: 0, reward: 0 }, canary: { n: 0, reward: 0 }, status: "running" }
        yield* save(tenantId, "policy", persisted(state))
      })

    const saveClassifier = (tenantId: string, model: RouterClassifier.Model) =>
      Effect.gen(function*() {
        const state = yield* stateOf(tenantId)
        state.classifier = model
        yield* save(tenantId, "classifier", model)
      })

    return { decide, record, startCanary, saveClassifier, state: stateOf }
  })

/**
 * `ROUTER_LAMBDA` (1), `ROUTER_ESCALATION_PENALTY` (0.05), `ROUTER_COST_SLM_A|SLM_B|LLM` (typical USD per request; defaults 0,
 * 0.0002, 0.004), `ROUTER_CANARY_ROLLBACK` (0.1), `ROUTER_CANARY_MIN_SAMPLES` (50),
 * `ROUTER_MODEL` (a model file written by `tessera router train`; default: the built-in prior).
 */
export const settings: Config.Config<Options> = Config.all({
  lambda: Config.number("ROUTER_LAMBDA").pipe(Config.withDefault(defaults.policy.lambda)),
  escalation: Config.number("ROUTER_ESCALATION_PENALTY").pipe(Config.withDefault(defaults.policy.escalation)),
  slmA: Config.number("ROUTER_COST_SLM_A").pipe(Config.withDefault(defaults.costs.SLM_A)),
  slmB: Config.number("ROUTER_COST_SLM_B").pipe(Config.withDefault(defaults.costs.SLM_B)),
  llm: Config.number("ROUTER_COST_LLM").pipe(Config.withDefault(defaults.costs.LLM)),
  rollback: Config.number("ROUTER_CANARY_ROLLBACK").pipe(Config.withDefault(defaults.rollbackThreshold)),
  minSamples: Config.integer("ROUTER_CANARY_MIN_SAMPLES").pipe(Config.withDefault(defaults.canaryMinSamples))
}).pipe(Config.map((c): Options => ({
  ...defaults,
  costs: { SLM_A: c.slmA, SLM_B: c.slmB, LLM: c.llm },
  policy: { lambda: c.lambda, escalation: c.escalation },
  rollbackThreshold: c.rollback,
  canaryMinSamples: c.minSamples
})))

/** Reads a model file written by `tessera router train`. */
export const readModel = (json: string): Either.Either<RouterClassifier.Model, string> =>
  Either.mapLeft(Schema.decodeUnknownEither(Schema.parseJson(RouterClassifier.Model))(json), (e) => `not a router model: ${e.message}`)

export class Router extends Context.Tag("@tessera/runtime/Router")<Router, Service>() {}

/** The router (also as the gateway's `RouterPort`) with these options. */
export const layerWith = (options: Options): Layer.Layer<Router | RouterPort, never, Database> =>
  Layer.effectContext(Effect.map(make(options), (service) => Context.make(Router, service).pipe(Context.add(RouterPort, service))))

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
