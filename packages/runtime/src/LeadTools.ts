/**
 * The lead tools, on the tenant's `leads` table: find a duplicate by email, qualify (a
 * deterministic score from what the lead told us), create.
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { Database } from "./Database.js"
import { stableId } from "./internal/stableId.js"
import * as Tool from "./Tool.js"

const Email = Schema.String.pipe(
  Schema.pattern(/^[^\s@]+@[^\s@]+\.[^\s@]+$/, { message: () => "must be an email address" })
)

export const Qualification = Schema.Literal("hot", "warm", "cold")

export const FindDuplicateInput = Schema.Struct({ email: Email })
export const FindDuplicateOutput = Schema.Struct({
  duplicate: Schema.Boolean,
  lead_id: Schema.NullOr(Schema.String)
})

export const QualifyInput = Schema.Struct({
  email: Email,
  company: Schema.optional(Schema.String),
  message: Schema.optionalWith(Schema.String, { default: () => "" }),
  budget_usd: Schema.optional(Schema.Number.pipe(Schema.nonNegative())),
  seats: Schema.optional(Schema.Int.pipe(Schema.nonNegative()))
})
export const QualifyOutput = Schema.Struct({
  score: Schema.Int,
  qualification: Qualification,
  reasons: Schema.Array(Schema.String)
})

export const CreateInput = Schema.Struct({
  name: Schema.String.pipe(Schema.minLength(1)),
  email: Email,
  company: Schema.optional(Schema.String),
  message: Schema.optionalWith(Schema.String, { default: () => "" }),
  score: Schema.optional(Schema.Int),
  qualification: Schema.optional(Qualification)
})
export const CreateOutput = Schema.Struct({ lead_id: Schema.String })

/** Addresses of free mail providers say little about a company. */
const freeMail = new Set(["gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "icloud.com", "proton.me", "aol.com"])
const intentWords = /\b(pricing|quote|demo|trial|buy|purchase|enterprise|contract|budget|seats|licen[cs]e|urgent|asap)\b/gi

/** Points and the reasons for them; 60+ is hot, 30+ warm. */
export const qualify = (input: typeof QualifyInput.Type): typeof QualifyOutput.Type => {
  const reasons: Array<string> = []
  let score = 0
  const domain = input.email.split("@")[1]?.toLowerCase() ?? ""
  if (!freeMail.has(domain)) {
    score += 20
    reasons.push("company email domain")
  }
  if (input.company !== undefined && input.company.trim() !== "") {
    score += 15
    reasons.push("named company")
  }
  const intents = new Set((input.message.match(intentWords) ?? []).map((w) => w.toLowerCase()))
  if (intents.size > 0) {
    score += Math.min(30, intents.size * 10)
    reasons.push(`buying intent: ${[...intents].sort().join(", ")}`)
  }
  if (input.budget_usd !== undefined && input.budget_usd >= 10_000) {
    score += 20
    reasons.push("budget of 10k USD or more")
  }
  if (input.seats !== undefined && input.seats >= 25) {
    score += 15
    reasons.push("25 seats or more")
  }
  const capped = Math.min(100, score)
  return { score: capped, qualification: capped >= 60 ? "hot" : capped >= 30 ? "warm" : "cold", reasons }
}

export const make = Effect.gen(function*() {
  const { sql } = yield* Database

  const findDuplicate = Tool.make({
    name: "leads.find_duplicate",
    description: "The existing lead with this email, if any.",
    input: FindDuplicateInput,
    output: FindDuplicateOutput,
    timeout: "5 seconds",
    retry: Tool.ioRetry,
    idempotent: true,
    transactional: true,
    run: (input, context) =>
      sql<{ id: string }>`SELECT id FROM leads WHERE tenant_id = ${context.tenantId} AND lower(email) = lower(${input.email})
        ORDER BY created_at LIMIT 1`.pipe(
        Effect.map((rows) => ({ duplicate: rows.length > 0, lead_id: rows[0]?.id ?? null })),
        Effect.mapError(Tool.storageFailure("leads.find_duplicate"))
      )
  })

  const qualifyTool = Tool.make({
    name: "leads.qualify",
    description: "Scores a lead 0-100 from its email domain, company, stated intent, budget and seats.",
    input: QualifyInput,
    output: QualifyOutput,
    timeout: "1 second",
    retry: Tool.noRetry,
    idempotent: true,
    transactional: false,
    run: (input) => Effect.succeed(qualify(input))
  })

  const create = Tool.make({
    name: "leads.create",
    description: "Records a new lead.",
    input: CreateInput,
    output: CreateOutput,
    timeout: "5 seconds",
    retry: Tool.ioRetry,
    idempotent: false,
    transactional: true,
    run: (input, context) => {
      const id = stableId("lead", context.idempotencyKey)
      return sql`INSERT INTO leads ${
        sql.insert({
          tenant_id: context.tenantId,
          id,
          name: input.name,
          email: input.email,
          company: input.company ?? null,
          message: input.message,
          score: input.score ?? null,
          qualification: input.qualification ?? null,
          created_by_run: context.runId
        })
      }`.pipe(Effect.as({ lead_id: id }), Effect.mapError(Tool.storageFailure("leads.create")))
    }
  })

  return [findDuplicate, qualifyTool, create] as const
})
