/**
 * A tenant's router state as sums, and how nodes merge it. LinUCB's A and b, the tier statistics,
 * the vocabulary counts and the canary's reward sums all add up, so a node keeps its live state
 * (the last merged `Stored` state plus its `pending` delta), and a flush adds the delta to the
 * stored row and `adopt`s the result plus whatever was learnt meanwhile. The canary itself (id,
 * policy, share) is not a sum: outcome sums merge only into the canary they were made under, and
 * a rollback is sticky (any node's rollback, or the merged sums showing the drop, wins).
 */
import type { Tier } from "@tessera/domain/Llm"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import * as RouterBandit from "./RouterBandit.js"
import * as RouterClassifier from "./RouterClassifier.js"
import * as RouterFeatures from "./RouterFeatures.js"

/** Words a tenant's vocabulary counts at most. */
export const maxVocabulary = 5_000

/** When a canary is rolled back: its mean reward below the control's by more than the threshold, after the samples. */
export interface Rollback {
  readonly rollbackThreshold: number
  readonly canaryMinSamples: number
}

export interface Policy {
  /** Weight of cost (as a share of an LLM call's) against quality in the objective. */
  readonly lambda: number
  /** Penalty of one escalation (a failed answer and its latency), in the same units. */
  readonly escalation: number
}

/** A side of a canary: outcomes and the sum of their rewards. */
export interface Running {
  n: number
  total: number
}

export interface Canary {
  readonly id: string
  readonly policy: Policy
  readonly share: number
  readonly control: Running
  readonly canary: Running
  status: "running" | "rolled_back"
}

/** The additive part of a tenant's router state: nodes merge it by adding. */
export interface Sums {
  readonly bandit: RouterBandit.Sums
  readonly vocabulary: Map<string, number>
  readonly stats: Record<Tier, { n: number; failures: number }>
  decisions: number
  misroutes: number
}

/** What a node learnt since its last flush; canary outcomes for the canary they were made under. */
export interface Delta extends Sums {
  canary: { readonly id: string; readonly control: Running; readonly canary: Running; rolledBack: boolean } | undefined
}

/** The stored state of a tenant (the `policy` row). */
export interface Stored extends Sums {
  canary: Canary | undefined
}

/** A tenant's router state, in memory: the last merged state plus `pending`. */
export interface TenantState extends Sums {
  classifier: RouterClassifier.Model
  readonly bandit: RouterBandit.Live
  canary: Canary | undefined
  readonly scratch: Float64Array
  pending: Delta
}

const RunningSchema = Schema.Struct({ n: Schema.Number, total: Schema.Number })
const PersistedPolicy = Schema.Struct({
  bandit: RouterBandit.State,
  vocabulary: Schema.Array(Schema.Tuple(Schema.String, Schema.Number)),
  stats: Schema.Record({ key: Schema.String, value: Schema.Struct({ n: Schema.Number, failures: Schema.Number }) }),
  canary: Schema.optional(Schema.Struct({
    id: Schema.String,
    policy: Schema.Struct({ lambda: Schema.Number, escalation: Schema.Number }),
    share: Schema.Number,
    control: RunningSchema,
    canary: RunningSchema,
    status: Schema.Literal("running", "rolled_back")
  })),
  decisions: Schema.Number,
  misroutes: Schema.Number
})
const decodePolicy = Schema.decodeUnknownEither(PersistedPolicy)

/** The stored state in a `policy` row, or why it cannot be read as this build's sums. */
export const decodeStored = (value: unknown): Either.Either<Stored, string> => {
  const decoded = decodePolicy(value)
  if (Either.isLeft(decoded)) return Either.left(decoded.left.message)
  const p = decoded.right
  if (!RouterBandit.fits(p.bandit, 3, RouterFeatures.dimension)) return Either.left("the bandit's dimensions differ from this build's features")
  const stored: Stored = { ...emptyStored(), bandit: RouterBandit.fromState(p.bandit) }
  for (const [w, n] of p.vocabulary) stored.vocabulary.set(w, n)
  for (const tier of RouterClassifier.tiers) {
    const s = p.stats[tier]
    if (s !== undefined) stored.stats[tier] = { n: s.n, failures: s.failures }
  }
  stored.canary = p.canary === undefined ? undefined : copyCanary(p.canary)
  stored.decisions = p.decisions
  stored.misroutes = p.misroutes
  return Either.right(stored)
}

export const emptyStats = (): Record<Tier, { n: number; failures: number }> => ({
  SLM_A: { n: 0, failures: 0 },
  SLM_B: { n: 0, failures: 0 },
  LLM: { n: 0, failures: 0 }
})

export const emptyDelta = (): Delta => ({
  bandit: RouterBandit.zero(3, RouterFeatures.dimension),
  vocabulary: new Map(),
  stats: emptyStats(),
  decisions: 0,
  misroutes: 0,
  canary: undefined
})

export const emptyStored = (): Stored => ({
  bandit: RouterBandit.initial(3, RouterFeatures.dimension),
  vocabulary: new Map(),
  stats: emptyStats(),
  decisions: 0,
  misroutes: 0,
  canary: undefined
})

export const countWord = (vocabulary: Map<string, number>, word: string, n: number) => {
  if (vocabulary.size < maxVocabulary || vocabulary.has(word)) vocabulary.set(word, (vocabulary.get(word) ?? 0) + n)
}

/** target += source (all but the bandit's A⁻¹, which `adopt` recomputes). */
export const addSums = (target: Sums, source: Sums): void => {
  RouterBandit.add(target.bandit, source.bandit)
  for (const [word, n] of source.vocabulary) countWord(target.vocabulary, word, n)
  for (const tier of RouterClassifier.tiers) {
    target.stats[tier].n += source.stats[tier].n
    target.stats[tier].failures += source.stats[tier].failures
  }
  target.decisions += source.decisions
  target.misroutes += source.misroutes
}

export const addRunning = (target: Running, source: Running) => {
  target.n += source.n
  target.total += source.total
}

export const isEmpty = (delta: Delta) =>
  RouterBandit.isZero(delta.bandit) && delta.vocabulary.size === 0 && delta.decisions === 0 && delta.misroutes === 0 && delta.canary === undefined

/** A delta that could not be flushed (`source`) goes back under the newer one; the newer canary wins. */
export const addDelta = (target: Delta, source: Delta): void => {
  addSums(target, source)
  const canary = source.canary
  if (canary === undefined) return
  if (target.canary === undefined) target.canary = canary
  else if (target.canary.id === canary.id) {
    addRunning(target.canary.control, canary.control)
    addRunning(target.canary.canary, canary.canary)
    target.canary.rolledBack ||= canary.rolledBack
  }
}

export const mean = (r: Running) => (r.n === 0 ? 0 : r.total / r.n)

export const dropped = (canary: Canary, options: Rollback) =>
  canary.status === "running" &&
  canary.canary.n >= options.canaryMinSamples && canary.control.n >= options.canaryMinSamples &&
  mean(canary.control) - mean(canary.canary) > options.rollbackThreshold

/** Adds a node's canary outcomes to the stored canary they were made under; answers whether that rolled it back. */
export const mergeCanary = (stored: Stored, delta: Delta, options: Rollback): boolean => {
  const canary = stored.canary
  if (canary === undefined || delta.canary === undefined || delta.canary.id !== canary.id) return false
  addRunning(canary.control, delta.canary.control)
  addRunning(canary.canary, delta.canary.canary)
  const before = canary.status
  if (delta.canary.rolledBack || dropped(canary, options)) canary.status = "rolled_back"
  return before === "running" && canary.status === "rolled_back"
}

const copyCanary = (canary: Canary): Canary => ({ ...canary, control: { ...canary.control }, canary: { ...canary.canary } })

/** Makes the tenant's live state the stored state plus what it learnt since (`pending`). */
export const adopt = (state: TenantState, stored: Stored): void => {
  const pending = state.pending
  RouterBandit.adopt(state.bandit, stored.bandit, pending.bandit)
  state.vocabulary.clear()
  for (const [word, n] of stored.vocabulary) state.vocabulary.set(word, n)
  for (const [word, n] of pending.vocabulary) countWord(state.vocabulary, word, n)
  for (const tier of RouterClassifier.tiers) {
    state.stats[tier] = { n: stored.stats[tier].n + pending.stats[tier].n, failures: stored.stats[tier].failures + pending.stats[tier].failures }
  }
  state.decisions = stored.decisions + pending.decisions
  state.misroutes = stored.misroutes + pending.misroutes
  const canary = stored.canary === undefined ? undefined : copyCanary(stored.canary)
  if (canary !== undefined && pending.canary?.id === canary.id) {
    addRunning(canary.control, pending.canary.control)
    addRunning(canary.canary, pending.canary.canary)
    if (pending.canary.rolledBack) canary.status = "rolled_back"
  }
  state.canary = canary
}

export const persisted = (stored: Stored): typeof PersistedPolicy.Type => ({
  bandit: RouterBandit.toState(stored.bandit),
  vocabulary: [...stored.vocabulary.entries()],
  stats: stored.stats,
  ...(stored.canary === undefined ? {} : { canary: stored.canary }),
  decisions: stored.decisions,
  misroutes: stored.misroutes
})
