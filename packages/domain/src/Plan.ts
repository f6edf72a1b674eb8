import * as Schema from "effect/Schema"

/** The limits a tenant's plan grants. Windows: requests per minute, tokens per UTC day, cost per UTC month. */
export class PlanLimits extends Schema.Class<PlanLimits>("PlanLimits")({
  requestsPerMinute: Schema.Int.pipe(Schema.positive()),
  tokensPerDay: Schema.Int.pipe(Schema.positive()),
  costPerMonthUsd: Schema.Number.pipe(Schema.positive()),
  maxConcurrentRuns: Schema.Int.pipe(Schema.positive())
}) {}

export const PlanName = Schema.Literal("free", "pro", "enterprise")
export type PlanName = typeof PlanName.Type

export class Plan extends Schema.Class<Plan>("Plan")({
  name: PlanName,
  limits: PlanLimits,
  features: Schema.Array(Schema.String)
}) {}

/** The built-in plans; a tenant's row may carry its own limits derived from one of them. */
export const builtIn: Record<PlanName, Plan> = {
  free: new Plan({
    name: "free",
    limits: new PlanLimits({ requestsPerMinute: 60, tokensPerDay: 200_000, costPerMonthUsd: 10, maxConcurrentRuns: 4 }),
    features: []
  }),
  pro: new Plan({
    name: "pro",
    limits: new PlanLimits({
      requestsPerMinute: 600,
      tokensPerDay: 5_000_000,
      costPerMonthUsd: 500,
      maxConcurrentRuns: 32
    }),
    features: ["llm_tier"]
  }),
  enterprise: new Plan({
    name: "enterprise",
    limits: new PlanLimits({
      requestsPerMinute: 6_000,
      tokensPerDay: 100_000_000,
      costPerMonthUsd: 20_000,
      maxConcurrentRuns: 256
    }),
    features: ["llm_tier", "sso", "audit_export"]
  })
}
