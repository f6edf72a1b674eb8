/**
 * The router's features: a fixed-length numeric vector built from the request and the tenant's
 * history, in microseconds, without I/O. Every value is in [0, 1]:
 * bias, length (log tokens), long (word count past 8), clauses (commas and conjunctions), strict output (schema), question count, reasoning cues (why,
 * explain, compare, debug…), code or error text, domain keywords (support, order, lead,
 * technical, billing, complaint), entities (order id, amount, email), novelty against the
 * tenant's vocabulary, the tenant's failure rates on SLM_A and SLM_B, the plan, urgency.
 */
import { extract } from "./LocalModel.js"

export const names = [
  "bias",
  "length",
  "long",
  "clauses",
  "strict",
  "questions",
  "reasoning",
  "code",
  "domain_support",
  "domain_order",
  "domain_lead",
  "domain_technical",
  "domain_billing",
  "domain_complaint",
  "entity_order",
  "entity_amount",
  "entity_email",
  "novelty",
  "failure_slm_a",
  "failure_slm_b",
  "plan",
  "urgency"
] as const

export const dimension = names.length

/** What the features need from the tenant's history (see `RouterState`). */
export interface History {
  /** How often each word appeared in the tenant's past requests. */
  readonly vocabulary: ReadonlyMap<string, number>
  /** Past outcomes on the cheap tiers: decisions and failures. */
  readonly slmA: { readonly n: number; readonly failures: number }
  readonly slmB: { readonly n: number; readonly failures: number }
}

export interface Input {
  readonly text: string
  readonly strict: boolean
  readonly plan: string | undefined
}

const domains: ReadonlyArray<RegExp> = [
  /\b(return|refund policy|opening hours|shipping|deliver|policy|warranty|faq|how (?:do|can) i|account|password|login)\b/i,
  /\b(order|parcel|package|tracking|track|shipment|cancel|exchange|arriv|dispatch)/i,
  /\b(pricing|quote|demo|enterprise|seats?|licen[cs]e|partnership|sales|trial|plan for|team of|budget|procure)/i,
  /\b(api|sdk|webhook|error|bug|crash|timeout|integration|endpoint|token|oauth|ssl|dns|server|deploy|latency|database|config)/i,
  /\b(invoice|charge|charged|payment|billing|card|refund|subscription|vat|receipt)/i,
  /\b(complain|unacceptable|terrible|awful|angry|disappointed|worst|ridiculous|furious|lawyer|escalate)/i
]

const reasoning = /\b(why|explain|compare|difference|trade-?offs?|analy[sz]e|evaluate|recommend|design|architecture|strategy|pros and cons|step[- ]by[- ]step|debug|root cause|migrat\w*|optimi[sz]\w*|summari[sz]e)\b/gi
const code = /(```|\{\s*"|=>|\bstack ?trace\b|\bexception\b|\b[45]\d\d\b|\bnull\b|\bundefined\b|\w\(\)|\bTraceback\b|\bstatus code\b)/i
const urgent = /\b(urgent|asap|immediately|right now|today|critical|emergency|down|outage)\b/i

export const words = (text: string): ReadonlyArray<string> => (text.toLowerCase().match(/[\p{L}\p{N}]{3,}/gu) ?? [])

const rate = (s: { readonly n: number; readonly failures: number }) => (s.failures + 1) / (s.n + 4)

const planValue = (plan: string | undefined): number => plan === "enterprise" ? 1 : plan === "pro" || plan === "business" ? 0.5 : 0

/** The feature vector of a request for a tenant with this history. */
export const extractFeatures = (input: Input, history: History): Array<number> => {
  const text = input.text
  const tokens = Math.max(1, Math.ceil(text.length / 4))
  const all = words(text)
  const unseen = all.length === 0 ? 0 : all.filter((w) => !history.vocabulary.has(w)).length / all.length
  const entities = extract(text)
  const reasoningHits = text.match(reasoning)?.length ?? 0
  return [
    1,
    Math.min(1, Math.log(tokens) / Math.log(1000)),
    Math.min(1, Math.max(0, (all.length - 8) / 30)),
    Math.min(1, (text.match(/[,;]|\b(?:and|but|or|because|although|while|then)\b/gi)?.length ?? 0) / 6),
    input.strict ? 1 : 0,
    Math.min(1, (text.match(/\?/g)?.length ?? 0) / 3),
    Math.min(1, reasoningHits / 2),
    code.test(text) ? 1 : 0,
    ...domains.map((d) => (d.test(text) ? 1 : 0)),
    entities["order_id"] === undefined ? 0 : 1,
    entities["amount"] === undefined ? 0 : 1,
    entities["email"] === undefined ? 0 : 1,
    // A tenant with little history sees everything as new: that says nothing, so damp it.
    history.vocabulary.size < 50 ? 0.5 : unseen,
    rate(history.slmA),
    rate(history.slmB),
    planValue(input.plan),
    urgent.test(text) ? 1 : 0
  ]
}
