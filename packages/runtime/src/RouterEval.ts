/**
 * Offline evaluation and training of the router on labelled queries (JSON lines):
 * `{"query": "…", "context": {"strict": false, "plan": "pro", "domain": "order"},
 *   "tiers": {"SLM_A": {"ok": true, "cost": 0}, "SLM_B": {"ok": true, "cost": 0.0002}, "LLM": {"ok": true, "cost": 0.004}}}`
 * — for each tier, whether its answer was acceptable and what it cost. The label of a query is its
 * cheapest acceptable tier (LLM when none is).
 *
 * `evaluate` replays the queries in order through the router as the gateway runs it: the
 * classifier (cross-validated, so no query is scored by a model trained on it, unless a model is
 * given), the bandit learning online from each outcome, early exit and escalation one tier at a
 * time. It reports accuracy of the chosen tier, quality kept against always-LLM, cost relative
 * to always-LLM, misroute rate, expected calibration error and the bandit's regret curve.
 */
import type { Tier } from "@tessera/domain/Llm"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Router from "./Router.js"
import * as RouterClassifier from "./RouterClassifier.js"
import * as RouterFeatures from "./RouterFeatures.js"

const TierOutcome = Schema.Struct({ ok: Schema.Boolean, cost: Schema.Number.pipe(Schema.nonNegative()) })

export const Query = Schema.Struct({
  id: Schema.optional(Schema.String),
  query: Schema.String,
  context: Schema.optionalWith(
    Schema.Struct({ strict: Schema.optional(Schema.Boolean), plan: Schema.optional(Schema.String), domain: Schema.optional(Schema.String) }),
    { default: () => ({}) }
  ),
  tiers: Schema.Struct({ SLM_A: TierOutcome, SLM_B: TierOutcome, LLM: TierOutcome })
})
export type Query = typeof Query.Type

const decodeLine = Schema.decodeUnknownEither(Schema.parseJson(Query))

/** The queries of a JSON-lines text; the error names the first bad line and what is wrong. */
export const parse = (text: string, file = "input"): Either.Either<ReadonlyArray<Query>, string> => {
  const out: Array<Query> = []
  const lines = text.split("\n")
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.trim() === "") continue
    const decoded = decodeLine(lines[i])
    if (Either.isLeft(decoded)) {
      const issues = ParseResult.ArrayFormatter.formatErrorSync(decoded.left)
      return Either.left(`${file}:${i + 1}: ${issues.map((issue) => `${issue.path.length === 0 ? "the line" : issue.path.join(".")}: ${issue.message}`).join("; ")}`)
    }
    out.push(decoded.right)
  }
  return out.length === 0 ? Either.left(`${file}: no queries`) : Either.right(out)
}

const ok = (q: Query): readonly [boolean, boolean, boolean] => [q.tiers.SLM_A.ok, q.tiers.SLM_B.ok, q.tiers.LLM.ok]
const costs = (q: Query): readonly [number, number, number] => [q.tiers.SLM_A.cost, q.tiers.SLM_B.cost, q.tiers.LLM.cost]

/** Index of the cheapest acceptable tier (2 when none is). */
export const label = (q: Query): number => {
  const i = ok(q).indexOf(true)
  return i < 0 ? 2 : i
}

/** Mean cost of each tier over the set (the router's cost scale for it). */
export const meanCosts = (queries: ReadonlyArray<Query>): Record<Tier, number> => {
  const sum = queries.reduce((acc, q) => [acc[0] + q.tiers.SLM_A.cost, acc[1] + q.tiers.SLM_B.cost, acc[2] + q.tiers.LLM.cost], [0, 0, 0])
  return { SLM_A: sum[0] / queries.length, SLM_B: sum[1] / queries.length, LLM: sum[2] / queries.length }
}

/** Feature vectors in order, the tenant's vocabulary growing as it would in production. */
export const featuresOf = (queries: ReadonlyArray<Query>): Array<Array<number>> => {
  const vocabulary = new Map<string, number>()
  const none = { n: 0, failures: 0 }
  return queries.map((q) => {
    const x = RouterFeatures.extractFeatures({ text: q.query, strict: q.context.strict ?? false, plan: q.context.plan }, { vocabulary, slmA: none, slmB: none })
    for (const w of RouterFeatures.words(q.query)) vocabulary.set(w, (vocabulary.get(w) ?? 0) + 1)
    return x
  })
}

/** Trains on all queries: the last fifth (every fifth query) calibrates the temperature. */
export const trainOn = (queries: ReadonlyArray<Query>): RouterClassifier.Model => {
  const xs = featuresOf(queries)
  const examples = queries.map((q, i) => ({ x: xs[i]!, y: label(q) }))
  return RouterClassifier.train(examples.filter((_, i) => i % 5 !== 4), examples.filter((_, i) => i % 5 === 4))
}

export interface Baseline {
  readonly qualityKept: number
  readonly costRatio: number
  /** Cumulative regret over the whole replay. */
  readonly regret: number
}

export interface Report {
  readonly queries: number
  /** Chosen tier = cheapest acceptable tier. */
  readonly accuracy: number
  /** Acceptable answers after escalation, over always-LLM's acceptable answers. */
  readonly qualityKept: number
  /** Acceptable on the first tier tried, over always-LLM's. */
  readonly firstTryQualityKept: number
  /** Total cost (escalations included) over always-LLM's. */
  readonly costRatio: number
  /** The chosen tier's answer was not acceptable (escalated). */
  readonly misrouteRate: number
  /** A more expensive tier than needed was chosen. */
  readonly overrouteRate: number
  readonly ece: number
  readonly tierShare: Record<Tier, number>
  /** Cumulative regret of the objective after each tenth of the replay. */
  readonly regret: ReadonlyArray<{ readonly at: number; readonly cumulative: number }>
  /** Fixed policies on the same objective, for comparison: always LLM, and SLM_A first with escalation. */
  readonly baselines: {
    readonly alwaysLlm: Baseline
    readonly cheapestFirst: Baseline
  }
}

const folds = 5

/**
 * Replays the queries through the router (see the module comment). Without `model`, query i is
 * scored by a classifier trained on the folds that do not hold it.
 */
export const evaluate = (queries: ReadonlyArray<Query>, options: Partial<Router.Options> = {}, model?: RouterClassifier.Model): Report => {
  const routerOptions: Router.Options = { ...Router.defaults, costs: meanCosts(queries), ...options }
  const models = model !== undefined
    ? Array.from({ length: folds }, () => model)
    : Array.from({ length: folds }, (_, f) => trainOn(queries.filter((_, i) => i % folds !== f)))
  const state = Router.emptyState(routerOptions)
  const policy = routerOptions.policy
  let correct = 0
  let finalOk = 0
  let firstOk = 0
  let llmOk = 0
  let cost = 0
  let llmCost = 0
  let misroutes = 0
  let overroutes = 0
  let regret = 0
  const shares = [0, 0, 0]
  const pairs: Array<{ confidence: number; correct: boolean }> = []
  const curve: Array<{ at: number; cumulative: number }> = []
  let cheapOk = 0
  let cheapCost = 0
  let cheapRegret = 0
  let llmRegret = 0
  /** Quality and cost of starting at tier t and escalating until an answer is acceptable. */
  const from = (q: Query, t: number) => {
    const o = ok(q)
    const c = costs(q)
    let spent = 0
    for (let k = t; k < 3; k++) {
      spent += c[k]!
      if (o[k]) return { ok: true, cost: spent, escalations: k - t }
    }
    return { ok: false, cost: spent, escalations: 2 - t }
  }
  queries.forEach((q, i) => {
    state.classifier = models[i % folds]!
    const decided = Router.decideWith(state, { text: q.query, strict: q.context.strict ?? false, plan: q.context.plan }, routerOptions)
    const t = RouterClassifier.tiers.indexOf(decided.decision.tier)
    const o = ok(q)
    const result = from(q, t)
    const y = label(q)
    if (t === y) correct++
    if (!o[t]) misroutes++
    if (t > y && o[y]) overroutes++
    if (result.ok) finalOk++
    if (o[t]) firstOk++
    if (o[2]) llmOk++
    shares[t]!++
    cost += result.cost
    llmCost += q.tiers.LLM.cost
    const cheap = from(q, 0)
    if (cheap.ok) cheapOk++
    cheapCost += cheap.cost
    pairs.push({ confidence: decided.decision.confidence, correct: o[t] })
    const scale = routerOptions.costs.LLM > 0 ? routerOptions.costs.LLM : 1
    const value = (r: { ok: boolean; cost: number; escalations: number }) =>
      (r.ok ? 1 : 0) - policy.lambda * Math.min(2, r.cost / scale) - policy.escalation * r.escalations
    const best = Math.max(value(from(q, 0)), value(from(q, 1)), value(from(q, 2)))
    regret += best - value(result)
    cheapRegret += best - value(cheap)
    llmRegret += best - value(from(q, 2))
    const served = RouterClassifier.tiers[t + result.escalations]!
    Router.learn(state, { decided, tier: served, passed: o[t], answered: result.ok, repairs: 0, costUsd: result.cost }, routerOptions)
    const n = i + 1
    if (n % Math.max(1, Math.round(queries.length / 10)) === 0 || n === queries.length) curve.push({ at: n, cumulative: regret })
  })
  const n = queries.length
  return {
    queries: n,
    accuracy: correct / n,
    qualityKept: llmOk === 0 ? 1 : finalOk / llmOk,
    firstTryQualityKept: llmOk === 0 ? 1 : firstOk / llmOk,
    costRatio: llmCost === 0 ? 0 : cost / llmCost,
    misrouteRate: misroutes / n,
    overrouteRate: overroutes / n,
    ece: RouterClassifier.expectedCalibrationError(pairs),
    tierShare: { SLM_A: shares[0]! / n, SLM_B: shares[1]! / n, LLM: shares[2]! / n },
    regret: curve,
    baselines: {
      alwaysLlm: { qualityKept: 1, costRatio: 1, regret: llmRegret },
      cheapestFirst: { qualityKept: llmOk === 0 ? 1 : cheapOk / llmOk, costRatio: llmCost === 0 ? 0 : cheapCost / llmCost, regret: cheapRegret }
    }
  }
}
