/**
 * The router's classifier: multinomial logistic regression from the features to the cheapest
 * acceptable tier (SLM_A, SLM_B, LLM), with temperature scaling so that its probabilities are
 * calibrated. `train` fits the weights by full-batch gradient descent with L2 on a training split
 * and the temperature by minimising the negative log-likelihood on a held-out split; it runs
 * offline (`tessera router train`) and the model is a small JSON document, stored per tenant.
 * `prior` is the model used before any training: hand-set weights that send long, reasoning,
 * technical or code-bearing requests up and short order/FAQ requests down.
 */
import type { Tier } from "@tessera/domain/Llm"
import * as Schema from "effect/Schema"
import * as RouterFeatures from "./RouterFeatures.js"

export const tiers: ReadonlyArray<Tier> = ["SLM_A", "SLM_B", "LLM"]

export const Model = Schema.Struct({
  features: Schema.Array(Schema.String),
  /** One row of weights per tier, one weight per feature. */
  weights: Schema.Array(Schema.Array(Schema.Number)),
  temperature: Schema.Number.pipe(Schema.positive()),
  trainedOn: Schema.Int
})
export type Model = typeof Model.Type

/** P(cheapest acceptable tier = t) for each tier. */
export const probabilities = (model: Model, x: ReadonlyArray<number>): [number, number, number] => {
  const z = model.weights.map((row) => {
    let s = 0
    for (let i = 0; i < row.length; i++) s += row[i]! * (x[i] ?? 0)
    return s / model.temperature
  })
  const top = Math.max(...z)
  const e = z.map((v) => Math.exp(v - top))
  const total = e[0]! + e[1]! + e[2]!
  return [e[0]! / total, e[1]! / total, e[2]! / total]
}

/** P(tier t is acceptable) = P(the cheapest acceptable tier is t or cheaper). */
export const acceptance = (p: readonly [number, number, number]): [number, number, number] => [p[0], p[0] + p[1], 1]

const row = (entries: Partial<Record<(typeof RouterFeatures.names)[number], number>>): Array<number> =>
  RouterFeatures.names.map((name) => entries[name] ?? 0)

export const prior: Model = {
  features: [...RouterFeatures.names],
  weights: [
    row({ bias: 1.2, domain_order: 0.8, domain_support: 0.6, entity_order: 0.6, entity_email: 0.4, length: -1.5, long: -1, clauses: -0.8, reasoning: -1.2, code: -1 }),
    row({ bias: 0.4, strict: 0.6, domain_billing: 0.4, domain_lead: 0.4, domain_complaint: 0.3, failure_slm_a: 1 }),
    row({ bias: -0.6, length: 1.5, long: 1, clauses: 0.6, reasoning: 1.8, code: 1.2, domain_technical: 0.8, questions: 0.6, novelty: 0.6, failure_slm_b: 1, plan: 0.3 })
  ],
  temperature: 1,
  trainedOn: 0
}

export interface Example {
  readonly x: ReadonlyArray<number>
  /** Index of the cheapest acceptable tier. */
  readonly y: number
}

const nll = (model: Model, data: ReadonlyArray<Example>): number =>
  data.reduce((sum, e) => sum - Math.log(Math.max(1e-12, probabilities(model, e.x)[e.y]!)), 0) / Math.max(1, data.length)

/** Fits weights on `train` and the temperature on `holdout` (the training set when empty). */
export const train = (
  train: ReadonlyArray<Example>,
  holdout: ReadonlyArray<Example>,
  options: { readonly epochs?: number; readonly rate?: number; readonly l2?: number } = {}
): Model => {
  const epochs = options.epochs ?? 1500
  const rate = options.rate ?? 1
  const l2 = options.l2 ?? 1e-3
  const d = RouterFeatures.dimension
  const w = tiers.map(() => new Array<number>(d).fill(0))
  const n = Math.max(1, train.length)
  for (let epoch = 0; epoch < epochs; epoch++) {
    const grad = tiers.map(() => new Array<number>(d).fill(0))
    for (const e of train) {
      const p = probabilities({ features: [], weights: w, temperature: 1, trainedOn: 0 }, e.x)
      for (let k = 0; k < 3; k++) {
        const g = p[k]! - (k === e.y ? 1 : 0)
        for (let i = 0; i < d; i++) grad[k]![i]! += g * (e.x[i] ?? 0)
      }
    }
    for (let k = 0; k < 3; k++) {
      for (let i = 0; i < d; i++) w[k]![i]! -= rate * (grad[k]![i]! / n + l2 * w[k]![i]!)
    }
  }
  const fitted: Model = { features: [...RouterFeatures.names], weights: w, temperature: 1, trainedOn: train.length }
  const calibration = holdout.length > 0 ? holdout : train
  let best = fitted
  let bestLoss = nll(fitted, calibration)
  for (let t = 0.25; t <= 5; t += 0.05) {
    const candidate = { ...fitted, temperature: t }
    const loss = nll(candidate, calibration)
    if (loss < bestLoss) {
      best = candidate
      bestLoss = loss
    }
  }
  return best
}

/** Expected calibration error of confidences against outcomes (0/1), over `bins` equal bins. */
export const expectedCalibrationError = (pairs: ReadonlyArray<{ readonly confidence: number; readonly correct: boolean }>, bins = 10): number => {
  let error = 0
  for (let b = 0; b < bins; b++) {
    const inBin = pairs.filter((p) => Math.min(bins - 1, Math.floor(p.confidence * bins)) === b)
    if (inBin.length === 0) continue
    const confidence = inBin.reduce((s, p) => s + p.confidence, 0) / inBin.length
    const accuracy = inBin.filter((p) => p.correct).length / inBin.length
    error += (inBin.length / pairs.length) * Math.abs(confidence - accuracy)
  }
  return error
}
