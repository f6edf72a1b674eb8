/**
 * The ticket tools, on the tenant's `tickets` table: the hand-off to a human. `tickets.escalate`
 * moves an existing ticket to the human queue, or opens one there directly.
 */
import { ToolFailed } from "@tessera/domain/ToolError"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { Database } from "./Database.js"
import { stableId } from "./internal/stableId.js"
import * as Tool from "./Tool.js"

export const Priority = Schema.Literal("low", "normal", "high", "urgent")

export const CreateInput = Schema.Struct({
  subject: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(500)),
  body: Schema.optionalWith(Schema.String, { default: () => "" }),
  category: Schema.optionalWith(Schema.String, { default: () => "general" }),
  priority: Schema.optionalWith(Priority, { default: () => "normal" as const }),
  customer_email: Schema.optional(Schema.String)
})

export const EscalateInput = Schema.Struct({
  ticket_id: Schema.optional(Schema.String),
  reason: Schema.String.pipe(Schema.minLength(1)),
  subject: Schema.optionalWith(Schema.String, { default: () => "Escalated conversation" }),
  body: Schema.optionalWith(Schema.String, { default: () => "" }),
  priority: Schema.optionalWith(Priority, { default: () => "high" as const })
})

export const TicketOutput = Schema.Struct({
  ticket_id: Schema.String,
  status: Schema.Literal("open", "escalated", "closed"),
  queue: Schema.String,
  priority: Priority
})

/** The queue people work escalated tickets from. */
export const humanQueue = "human"

export const make = Effect.gen(function*() {
  const { sql } = yield* Database

  const create = Tool.make({
    name: "tickets.create",
    description: "Opens a support ticket for the conversation.",
    input: CreateInput,
    output: TicketOutput,
    timeout: "5 seconds",
    retry: Tool.ioRetry,
    idempotent: false,
    transactional: true,
    compensate: (_, output) => ({ tool: "tickets.escalate", input: { ticket_id: output.ticket_id, reason: "run compensated" } }),
    run: (input, context) => {
      const id = stableId("tkt", context.idempotencyKey)
      return sql`INSERT INTO tickets ${
        sql.insert({
          tenant_id: context.tenantId,
          id,
          subject: input.subject,
          body: input.body,
          category: input.category,
          priority: input.priority,
          status: "open",
          queue: "support",
          customer_email: input.customer_email ?? null,
          session_id: context.sessionId,
          run_id: context.runId
        })
      }`.pipe(
        Effect.as({ ticket_id: id, status: "open" as const, queue: "support", priority: input.priority }),
        Effect.mapError(Tool.storageFailure("tickets.create"))
      )
    }
  })

  const escalate = Tool.make({
    name: "tickets.escalate",
    description: "Hands the conversation to a human: escalates the ticket, or opens an escalated one.",
    input: EscalateInput,
    output: TicketOutput,
    timeout: "5 seconds",
    retry: Tool.ioRetry,
    idempotent: false,
    transactional: true,
    run: (input, context) =>
      Effect.gen(function*() {
        const tool = "tickets.escalate"
        if (input.ticket_id !== undefined) {
          const rows = yield* sql<{ id: string; priority: typeof Priority.Type }>`UPDATE tickets
            SET status = 'escalated', queue = ${humanQueue}, escalation_reason = ${input.reason}, updated_at = now()
            WHERE tenant_id = ${context.tenantId} AND id = ${input.ticket_id} RETURNING id, priority`.pipe(
            Effect.mapError(Tool.storageFailure(tool))
          )
          const row = rows[0]
          if (row === undefined) {
            return yield* new ToolFailed({ tool, reason: `ticket ${input.ticket_id} does not exist`, retryable: false })
          }
          return { ticket_id: row.id, status: "escalated" as const, queue: humanQueue, priority: row.priority }
        }
        const id = stableId("tkt", context.idempotencyKey)
        yield* sql`INSERT INTO tickets ${
          sql.insert({
            tenant_id: context.tenantId,
            id,
            subject: input.subject,
            body: input.body,
            priority: input.priority,
            status: "escalated",
            queue: humanQueue,
            session_id: context.sessionId,
            run_id: context.runId,
            escalation_reason: input.reason
          })
        }`.pipe(Effect.mapError(Tool.storageFailure(tool)))
        return { ticket_id: id, status: "escalated" as const, queue: humanQueue, priority: input.priority }
      })
  })

  return [create, escalate] as const
})
