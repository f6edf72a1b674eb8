/**
 * A tenant's admission state: a token bucket for requests per minute (capacity = the plan's
 * limit, refilled continuously), fixed UTC windows for tokens per day and cost per month, and a
 * count of runs in flight. Pure: the Tenant entity owns one and feeds it the clock, so decisions
 * are exact (one writer) and testable on simulated time.
 */
import type { QuotaKind } from "@tessera/domain/Errors"
import type { PlanLimits } from "@tessera/domain/Plan"

const minuteMs = 60_000
const dayMs = 86_400_000

export interface Usage {
  /** Start of the UTC day the counters belong to (ms). */
  readonly dayStart: number
  /** Start of the UTC month (ms). */
  readonly monthStart: number
  readonly tokensToday: number
  readonly costThisMonth: number
}

export interface State {
  readonly tokens: number
  readonly refilledAt: number
  readonly usage: Usage
  readonly runsInFlight: number
}

export type Decision =
  | { readonly _tag: "Admitted"; readonly state: State; readonly remaining: number; readonly resetMs: number }
  | { readonly _tag: "Denied"; readonly quota: QuotaKind; readonly limit: number; readonly retryAfterMs: number }

export const dayStartOf = (now: number): number => Math.floor(now / dayMs) * dayMs

export const monthStartOf = (now: number): number => {
  const date = new Date(now)
  return Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), 1)
}

const nextMonthStart = (now: number): number => {
  const date = new Date(now)
  return Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + 1, 1)
}

export const emptyUsage = (now: number): Usage => ({
  dayStart: dayStartOf(now),
  monthStart: monthStartOf(now),
  tokensToday: 0,
  costThisMonth: 0
})

export const make = (limits: PlanLimits, now: number, usage: Usage, runsInFlight: number): State => ({
  tokens: limits.requestsPerMinute,
  refilledAt: now,
  usage,
  runsInFlight
})

/** Moves the day and month windows forward when the clock has crossed their boundary. */
const roll = (usage: Usage, now: number): Usage => {
  const dayStart = dayStartOf(now)
  const monthStart = monthStartOf(now)
  return {
    dayStart,
    monthStart,
    tokensToday: dayStart === usage.dayStart ? usage.tokensToday : 0,
    costThisMonth: monthStart === usage.monthStart ? usage.costThisMonth : 0
  }
}

const refill = (state: State, limits: PlanLimits, now: number): State => {
  const rate = limits.requestsPerMinute / minuteMs
  const tokens = Math.min(limits.requestsPerMinute, state.tokens + Math.max(0, now - state.refilledAt) * rate)
  return { ...state, tokens, refilledAt: now, usage: roll(state.usage, now) }
}

export const admit = (
  state: State,
  limits: PlanLimits,
  now: number,
  request: { readonly estimatedTokens: number; readonly estimatedCostUsd: number; readonly startsRun: boolean }
): Decision => {
  const current = refill(state, limits, now)
  const rate = limits.requestsPerMinute / minuteMs
  if (current.tokens < 1) {
    return {
      _tag: "Denied",
      quota: "requests_per_minute",
      limit: limits.requestsPerMinute,
      retryAfterMs: Math.ceil((1 - current.tokens) / rate)
    }
  }
  if (current.usage.tokensToday + request.estimatedTokens > limits.tokensPerDay) {
    return {
      _tag: "Denied",
      quota: "tokens_per_day",
      limit: limits.tokensPerDay,
      retryAfterMs: current.usage.dayStart + dayMs - now
    }
  }
  if (current.usage.costThisMonth + request.estimatedCostUsd > limits.costPerMonthUsd) {
    return {
      _tag: "Denied",
      quota: "cost_per_month",
      limit: limits.costPerMonthUsd,
      retryAfterMs: nextMonthStart(now) - now
    }
  }
  if (request.startsRun && current.runsInFlight >= limits.maxConcurrentRuns) {
    return { _tag: "Denied", quota: "concurrent_runs", limit: limits.maxConcurrentRuns, retryAfterMs: 1_000 }
  }
  const tokens = current.tokens - 1
  return {
    _tag: "Admitted",
    state: { ...current, tokens, runsInFlight: current.runsInFlight + (request.startsRun ? 1 : 0) },
    remaining: Math.floor(tokens),
    resetMs: Math.ceil((limits.requestsPerMinute - tokens) / rate)
  }
}

export const record = (
  state: State,
  now: number,
  usage: { readonly tokens: number; readonly costUsd: number; readonly runsFinished: number }
): State => {
  const rolled = roll(state.usage, now)
  return {
    ...state,
    usage: {
      ...rolled,
      tokensToday: rolled.tokensToday + usage.tokens,
      costThisMonth: rolled.costThisMonth + usage.costUsd
    },
    runsInFlight: Math.max(0, state.runsInFlight - usage.runsFinished)
  }
}
