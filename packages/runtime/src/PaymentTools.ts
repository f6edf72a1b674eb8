/**
 * `payments.charge` and `payments.refund`, through the `PaymentGateway` port (the sandbox ledger
 * by default). The call's idempotency key goes to the gateway unchanged, so a replayed charge
 * returns the first charge. A charge's compensation refunds it in full.
 */
import { ToolFailed } from "@tessera/domain/ToolError"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { PaymentGateway, type PaymentRefused, type PaymentUnavailable } from "./PaymentGateway.js"
import * as Tool from "./Tool.js"

export const ChargeInput = Schema.Struct({
  amount_cents: Schema.Int.pipe(Schema.positive()),
  currency: Schema.optionalWith(
    Schema.String.pipe(Schema.pattern(/^[A-Z]{3}$/, { message: () => "must be a 3-letter ISO currency code" })),
    { default: () => "USD" }
  ),
  customer: Schema.String.pipe(Schema.minLength(1)),
  order_id: Schema.optional(Schema.String),
  payment_method: Schema.optionalWith(Schema.String, { default: () => "pm_card_visa" })
})
export const ChargeOutput = Schema.Struct({
  charge_id: Schema.String,
  status: Schema.Literal("succeeded", "partially_refunded", "refunded"),
  amount_cents: Schema.Int,
  currency: Schema.String
})

export const RefundInput = Schema.Struct({
  charge_id: Schema.String.pipe(Schema.minLength(1)),
  amount_cents: Schema.optional(Schema.Int.pipe(Schema.positive())),
  reason: Schema.optionalWith(Schema.String, { default: () => "requested_by_customer" })
})
export const RefundOutput = Schema.Struct({
  refund_id: Schema.String,
  charge_id: Schema.String,
  amount_cents: Schema.Int,
  currency: Schema.String
})

const failed = (tool: string) => (error: PaymentRefused | PaymentUnavailable) =>
  new ToolFailed({ tool, reason: error.reason, retryable: error._tag === "PaymentUnavailable" })

export const make = Effect.gen(function*() {
  const gateway = yield* PaymentGateway

  const charge = Tool.make({
    name: "payments.charge",
    description: "Charges a customer; payments.refund undoes it.",
    input: ChargeInput,
    output: ChargeOutput,
    timeout: "10 seconds",
    retry: Tool.ioRetry,
    idempotent: false,
    transactional: true,
    compensate: (_, output) => ({ tool: "payments.refund", input: { charge_id: output.charge_id, reason: "compensation" } }),
    run: (input, context) =>
      gateway.charge({
        tenantId: context.tenantId,
        amountCents: input.amount_cents,
        currency: input.currency,
        customer: input.customer,
        orderId: input.order_id ?? null,
        paymentMethod: input.payment_method,
        idempotencyKey: context.idempotencyKey
      }).pipe(
        Effect.map((c) => ({ charge_id: c.chargeId, status: c.status, amount_cents: c.amountCents, currency: c.currency })),
        Effect.mapError(failed("payments.charge"))
      )
  })

  const refund = Tool.make({
    name: "payments.refund",
    description: "Refunds a charge, in full unless an amount is given.",
    input: RefundInput,
    output: RefundOutput,
    timeout: "10 seconds",
    retry: Tool.ioRetry,
    idempotent: false,
    transactional: true,
    run: (input, context) =>
      gateway.refund({
        tenantId: context.tenantId,
        chargeId: input.charge_id,
        amountCents: input.amount_cents,
        reason: input.reason,
        idempotencyKey: context.idempotencyKey
      }).pipe(
        Effect.map((r) => ({ refund_id: r.refundId, charge_id: r.chargeId, amount_cents: r.amountCents, currency: r.currency })),
        Effect.mapError(failed("payments.refund"))
      )
  })

  return [charge, refund] as const
})
