/**
 * The router's contextual bandit: disjoint LinUCB, one arm per tier, learning per tenant from
 * outcomes. Each arm keeps A⁻¹ (updated in place with Sherman–Morrison, so a decision and an
 * update are O(d²) with no matrix inversion) and b; its score for features x is θᵀx + α√(xᵀA⁻¹x)
 * with θ = A⁻¹b. The reward is the router's objective, `quality − λ·cost`, learnt as a
 * correction on top of the classifier's estimate (the residual), so a new tenant starts from
 * the classifier and the bandit moves it where the tenant's outcomes disagree.
 */
import * as Schema from "effect/Schema"

export const Arm = Schema.Struct({
  /** A⁻¹, row-major, d×d. */
  aInv: Schema.Array(Schema.Number),
  b: Schema.Array(Schema.Number),
  n: Schema.Int
})
export type Arm = typeof Arm.Type

export const State = Schema.Struct({ alpha: Schema.Number, arms: Schema.Array(Arm) })
export type State = typeof State.Type

/** A mutable copy the router updates in place. */
export interface Live {
  alpha: number
  readonly arms: Array<{ aInv: Float64Array; b: Float64Array; n: number }>
}

export const make = (arms: number, dimension: number, alpha = 0.3): Live => ({
  alpha,
  arms: Array.from({ length: arms }, () => {
    const aInv = new Float64Array(dimension * dimension)
    for (let i = 0; i < dimension; i++) aInv[i * dimension + i] = 1
    return { aInv, b: new Float64Array(dimension), n: 0 }
  })
})

export const fromState = (state: State): Live => ({
  alpha: state.alpha,
  arms: state.arms.map((a) => ({ aInv: Float64Array.from(a.aInv), b: Float64Array.from(a.b), n: a.n }))
})

export const toState = (live: Live): State => ({
  alpha: live.alpha,
  arms: live.arms.map((a) => ({ aInv: Array.from(a.aInv), b: Array.from(a.b), n: a.n }))
})

const times = (aInv: Float64Array, x: ReadonlyArray<number>, out: Float64Array) => {
  const d = x.length
  for (let i = 0; i < d; i++) {
    let s = 0
    for (let j = 0; j < d; j++) s += aInv[i * d + j]! * x[j]!
    out[i] = s
  }
}

/** The arm's estimate θᵀx and its exploration bonus α√(xᵀA⁻¹x). */
export const score = (live: Live, arm: number, x: ReadonlyArray<number>, scratch: Float64Array): { readonly mean: number; readonly bonus: number } => {
  const a = live.arms[arm]!
  times(a.aInv, x, scratch)
  let mean = 0
  let variance = 0
  for (let i = 0; i < x.length; i++) {
    mean += a.b[i]! * scratch[i]!
    variance += x[i]! * scratch[i]!
  }
  return { mean, bonus: live.alpha * Math.sqrt(Math.max(0, variance)) }
}

/** Learns `reward` for `arm` at `x`. */
export const update = (live: Live, arm: number, x: ReadonlyArray<number>, reward: number): void => {
  const a = live.arms[arm]!
  const d = x.length
  const v = new Float64Array(d)
  times(a.aInv, x, v)
  let denominator = 1
  for (let i = 0; i < d; i++) denominator += x[i]! * v[i]!
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) a.aInv[i * d + j]! -= (v[i]! * v[j]!) / denominator
  }
  for (let i = 0; i < d; i++) a.b[i]! += reward * x[i]!
  a.n++
}
