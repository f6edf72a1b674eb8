/**
 * Where each tier goes: per tier an ordered list of routes (provider, model, price per 1k input
 * and output tokens); the gateway tries them in order (failover). A route is written
 * `provider:model` or `provider:model@input/output` (USD per 1k tokens), routes of one tier
 * separated by commas, e.g. `openai:gpt-4o-mini, anthropic:claude-3-5-haiku-latest` or
 * `openai:llama3.1@0/0`. Known models have a built-in price; another model must state its price.
 * `local` is the built-in model (free). The embedded default sends every tier to `local`.
 */
import { type Tier } from "@tessera/domain/Llm"
import * as Either from "effect/Either"
import * as LocalModel from "./LocalModel.js"

export interface Route {
  readonly provider: string
  readonly model: string
  /** USD per 1k input tokens. */
  readonly inputPer1k: number
  /** USD per 1k output tokens. */
  readonly outputPer1k: number
}

export type TierRoutes = { readonly [T in Tier]: ReadonlyArray<Route> }

export const tiers: ReadonlyArray<Tier> = ["SLM_A", "SLM_B", "LLM"]

export const local: Route = { provider: "local", model: LocalModel.model, inputPer1k: 0, outputPer1k: 0 }

export const allLocal: TierRoutes = { SLM_A: [local], SLM_B: [local], LLM: [local] }

/** USD per 1k tokens (input, output) of models with a published price. */
export const prices: Readonly<Record<string, readonly [number, number]>> = {
  "gpt-4o-mini": [0.00015, 0.0006],
  "gpt-4o": [0.0025, 0.01],
  "gpt-4.1-nano": [0.0001, 0.0004],
  "gpt-4.1-mini": [0.0004, 0.0016],
  "gpt-4.1": [0.002, 0.008],
  "claude-3-5-haiku-latest": [0.0008, 0.004],
  "claude-3-7-sonnet-latest": [0.003, 0.015],
  "claude-sonnet-4-0": [0.003, 0.015],
  "claude-opus-4-0": [0.015, 0.075]
}

/** Parses one tier's routes; the error names the route and what is wrong with it. */
export const parse = (spec: string): Either.Either<ReadonlyArray<Route>, string> => {
  const routes: Array<Route> = []
  for (const raw of spec.split(",").map((s) => s.trim()).filter((s) => s.length > 0)) {
    if (raw === "local") {
      routes.push(local)
      continue
    }
    const match = /^([a-z][a-z0-9_-]*):([^@\s]+)(?:@([0-9.]+)\/([0-9.]+))?$/.exec(raw)
    if (match === null) return Either.left(`"${raw}" is not provider:model or provider:model@input/output`)
    const [, provider, model, input, output] = match
    const price = input !== undefined && output !== undefined ? [Number(input), Number(output)] as const : prices[model!]
    if (price === undefined) return Either.left(`"${raw}": no built-in price for ${model}; write ${provider}:${model}@<input>/<output> (USD per 1k tokens)`)
    if (!price.every(Number.isFinite)) return Either.left(`"${raw}": the price is not a number`)
    routes.push({ provider: provider!, model: model!, inputPer1k: price[0], outputPer1k: price[1] })
  }
  return routes.length === 0 ? Either.left("no route given") : Either.right(routes)
}

/** The cost in USD of a call on a route. */
export const cost = (route: Route, inputTokens: number, outputTokens: number): number =>
  (inputTokens / 1000) * route.inputPer1k + (outputTokens / 1000) * route.outputPer1k

/** The first route of a tier's price for a typical call (the router's cost estimate). */
export const typicalCost = (routes: TierRoutes, tier: Tier, inputTokens: number, outputTokens = 200): number => {
  const route = routes[tier][0]
  return route === undefined ? 0 : cost(route, inputTokens, outputTokens)
}
