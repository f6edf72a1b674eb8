/**
 * The router's contextual bandit: disjoint LinUCB, one arm per tier, learning per tenant from
 * outcomes. Each arm keeps its sufficient statistics A = I + Σ xxᵀ and b = Σ r·x, which are sums:
 * what two nodes learn separately adds up (`add`), so a node keeps the `Sums` it learnt since its
 * last flush and merges them into the stored ones. For decisions the live copy also keeps A⁻¹,
 * updated in place with Sherman–Morrison (a decision and an update are O(d²), no inversion; A⁻¹
 * is recomputed only when a merged state is adopted). The score for features x is
 * θᵀx + α√(xᵀA⁻¹x) with θ = A⁻¹b. The reward is the router's objective, `quality − λ·cost`, learnt
 * as a correction on top of the classifier's estimate (the residual), so a new tenant starts from
 * the classifier and the bandit moves it where the tenant's outcomes disagree. A later verdict on
 * an observation (validation, feedback) revises its reward: b += Δr·x (`reinforce`), A unchanged.
 */
import * as Schema from "effect/Schema"

export const Arm = Schema.Struct({
  /** A, row-major, d×d. */
  a: Schema.Array(Schema.Number),
  b: Schema.Array(Schema.Number),
  n: Schema.Int
})
export type Arm = typeof Arm.Type

export const State = Schema.Struct({ arms: Schema.Array(Arm) })
export type State = typeof State.Type

/** Per arm: A (or, in a delta, Σ xxᵀ), b and the observation count. */
export interface Sums {
  readonly arms: ReadonlyArray<{ readonly a: Float64Array; readonly b: Float64Array; n: number }>
}

/** A mutable copy the router decides on and updates in place. */
export interface Live {
  readonly alpha: number
  readonly arms: ReadonlyArray<{ readonly a: Float64Array; readonly aInv: Float64Array; readonly b: Float64Array; n: number }>
}

const identity = (dimension: number) => {
  const m = new Float64Array(dimension * dimension)
  for (let i = 0; i < dimension; i++) m[i * dimension + i] = 1
  return m
}

export const make = (arms: number, dimension: number, alpha = 0.3): Live => ({
  alpha,
  arms: Array.from({ length: arms }, () => ({ a: identity(dimension), aInv: identity(dimension), b: new Float64Array(dimension), n: 0 }))
})

/** The stored statistics of a bandit that has learnt nothing (A = I). */
export const initial = (arms: number, dimension: number): Sums => ({
  arms: Array.from({ length: arms }, () => ({ a: identity(dimension), b: new Float64Array(dimension), n: 0 }))
})

/** Zero sums: a delta with nothing learnt yet. */
export const zero = (arms: number, dimension: number): Sums => ({
  arms: Array.from({ length: arms }, () => ({ a: new Float64Array(dimension * dimension), b: new Float64Array(dimension), n: 0 }))
})

export const isZero = (sums: Sums): boolean => sums.arms.every((arm) => arm.n === 0 && arm.b.every((v) => v === 0))

/** Whether stored statistics fit `arms` arms of dimension `dimension`. */
export const fits = (state: State, arms: number, dimension: number): boolean =>
  state.arms.length === arms && state.arms.every((a) => a.b.length === dimension && a.a.length === dimension * dimension)

export const fromState = (state: State): Sums => ({
  arms: state.arms.map((a) => ({ a: Float64Array.from(a.a), b: Float64Array.from(a.b), n: a.n }))
})

export const toState = (sums: Sums): State => ({
  arms: sums.arms.map((a) => ({ a: Array.from(a.a), b: Array.from(a.b), n: a.n }))
})

/** target += source, arm by arm. */
export const add = (target: Sums, source: Sums): void => {
  target.arms.forEach((arm, k) => {
    const other = source.arms[k]!
    for (let i = 0; i < arm.a.length; i++) arm.a[i]! += other.a[i]!
    for (let i = 0; i < arm.b.length; i++) arm.b[i]! += other.b[i]!
    arm.n += other.n
  })
}

/** The inverse of a symmetric positive-definite d×d matrix (Gauss–Jordan with partial pivoting). */
export const invert = (m: Float64Array, dimension: number): Float64Array => {
  const d = dimension
  const work = Float64Array.from(m)
  const out = identity(d)
  for (let col = 0; col < d; col++) {
    let pivot = col
    for (let r = col + 1; r < d; r++) if (Math.abs(work[r * d + col]!) > Math.abs(work[pivot * d + col]!)) pivot = r
    if (pivot !== col) {
      for (let j = 0; j < d; j++) {
        const w = work[col * d + j]!
        work[col * d + j] = work[pivot * d + j]!
        work[pivot * d + j] = w
        const o = out[col * d + j]!
        out[col * d + j] = out[pivot * d + j]!
        out[pivot * d + j] = o
      }
    }
    const p = work[col * d + col]!
    for (let j = 0; j < d; j++) {
      work[col * d + j]! /= p
      out[col * d + j]! /= p
    }
    for (let r = 0; r < d; r++) {
      const f = work[r * d + col]!
      if (r === col || f === 0) continue
      for (let j = 0; j < d; j++) {
        work[r * d + j]! -= f * work[col * d + j]!
        out[r * d + j]! -= f * out[col * d + j]!
      }
    }
  }
  return out
}

/** Makes `live` the sum of `base` and `pending` (what was learnt since `base` was taken), with A⁻¹ recomputed. */
export const adopt = (live: Live, base: Sums, pending: Sums): void => {
  live.arms.forEach((arm, k) => {
    const from = base.arms[k]!
    const extra = pending.arms[k]!
    for (let i = 0; i < arm.a.length; i++) arm.a[i] = from.a[i]! + extra.a[i]!
    for (let i = 0; i < arm.b.length; i++) arm.b[i] = from.b[i]! + extra.b[i]!
    arm.n = from.n + extra.n
    arm.aInv.set(invert(arm.a, arm.b.length))
  })
}

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

/** Adds the observation of `reward` for `arm` at `x` to sums (A += xxᵀ, b += r·x). */
export const observe = (sums: Sums, arm: number, x: ReadonlyArray<number>, reward: number): void => {
  const a = sums.arms[arm]!
  const d = x.length
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) a.a[i * d + j]! += x[i]! * x[j]!
    a.b[i]! += reward * x[i]!
  }
  a.n++
}

/** Revises the reward of an observation already made for `arm` at `x` by `delta` (b += Δr·x). */
export const reinforce = (sums: Sums, arm: number, x: ReadonlyArray<number>, delta: number): void => {
  const b = sums.arms[arm]!.b
  for (let i = 0; i < x.length; i++) b[i]! += delta * x[i]!
}

/** Learns `reward` for `arm` at `x`: the observation, and A⁻¹ by Sherman–Morrison. */
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
  observe(live, arm, x, reward)
}
