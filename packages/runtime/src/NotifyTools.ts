/**
 * `notify.email`: writes the message to the tenant's `email_outbox` (a mailer drains it). An
 * address in a reserved never-deliverable domain (RFC 2606/6761 `.invalid`) is refused.
 */
import { ToolFailed } from "@tessera/domain/ToolError"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { Database } from "./Database.js"
import { stableId } from "./internal/stableId.js"
import * as Tool from "./Tool.js"

export const EmailInput = Schema.Struct({
  to: Schema.String.pipe(Schema.pattern(/^[^\s@]+@[^\s@]+\.[^\s@]+$/, { message: () => "must be an email address" })),
  subject: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(500)),
  body: Schema.String,
  template: Schema.optional(Schema.String)
})
export const EmailOutput = Schema.Struct({
  email_id: Schema.String,
  status: Schema.Literal("queued")
})

export const make = Effect.gen(function*() {
  const { sql } = yield* Database

  const email = Tool.make({
    name: "notify.email",
    description: "Queues an email to a customer or to the tenant's team.",
    input: EmailInput,
    output: EmailOutput,
    timeout: "5 seconds",
    retry: Tool.ioRetry,
    idempotent: false,
    transactional: true,
    run: (input, context) =>
      Effect.gen(function*() {
        const domain = input.to.split("@")[1]?.toLowerCase() ?? ""
        if (domain === "invalid" || domain.endsWith(".invalid")) {
          return yield* new ToolFailed({
            tool: "notify.email",
            reason: `recipient ${input.to} is in the reserved .invalid domain and can never be delivered`,
            retryable: false
          })
        }
        const id = stableId("em", context.idempotencyKey)
        yield* sql`INSERT INTO email_outbox ${
          sql.insert({
            tenant_id: context.tenantId,
            id,
            recipient: input.to,
            subject: input.subject,
            body: input.body,
            template: input.template ?? null,
            run_id: context.runId
          })
        }`.pipe(Effect.mapError(Tool.storageFailure("notify.email")))
        return { email_id: id, status: "queued" as const }
      })
  })

  return [email] as const
})
