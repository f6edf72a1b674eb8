/**
 * The built-in tools every tenant has. Their typed input/output schemas, timeouts, retry defaults
 * and compensations live with their implementations in the runtime's ToolRegistry; workflow
 * validation only needs to know which names exist.
 */
import * as Schema from "effect/Schema"

export const BuiltinToolName = Schema.Literal(
  "orders.create",
  "orders.get",
  "orders.track",
  "orders.cancel",
  "orders.modify",
  "payments.charge",
  "payments.refund",
  "leads.create",
  "leads.find_duplicate",
  "leads.qualify",
  "tickets.create",
  "tickets.escalate",
  "notify.email",
  "knowledge.search",
  "http"
)
export type BuiltinToolName = typeof BuiltinToolName.Type

export const builtinToolNames: ReadonlyArray<BuiltinToolName> = BuiltinToolName.literals
