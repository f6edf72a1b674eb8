/**
 * The payment port: charges and refunds, each carrying the caller's idempotency key so a
 * replayed call returns the first result and never moves money twice. The embedded
 * implementation is the sandbox ledger in Postgres (`SandboxPayments`); a Stripe adapter would
 * implement the same interface (Stripe's `Idempotency-Key` header takes the key unchanged).
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"

export class Charge extends Schema.Class<Charge>("Charge")({
  chargeId: Schema.String,
  amountCents: Schema.Int,
  refundedCents: Schema.Int,
  currency: Schema.String,
  status: Schema.Literal("succeeded", "partially_refunded", "refunded")
}) {}

export class Refund extends Schema.Class<Refund>("Refund")({
  refundId: Schema.String,
  chargeId: Schema.String,
  amountCents: Schema.Int,
  currency: Schema.String
}) {}

export interface ChargeRequest {
  readonly tenantId: string
  readonly amountCents: number
  readonly currency: string
  readonly customer: string
  readonly orderId: string | null
  /** A payment method token; the sandbox declines `pm_card_declined` (as Stripe's test card does). */
  readonly paymentMethod: string
  readonly idempotencyKey: string
}

export interface RefundRequest {
  readonly tenantId: string
  readonly chargeId: string
  /** The whole unrefunded remainder when absent. */
  readonly amountCents: number | undefined
  readonly reason: string
  readonly idempotencyKey: string
}

/** The gateway refused: a decline, an unknown charge, an over-refund. Not worth retrying. */
export class PaymentRefused extends Schema.TaggedError<PaymentRefused>()("PaymentRefused", {
  reason: Schema.String
}) {
  readonly code = "payment_refused"
}

/** The gateway could not be reached or failed; the call may be retried with the same key. */
export class PaymentUnavailable extends Schema.TaggedError<PaymentUnavailable>()("PaymentUnavailable", {
  reason: Schema.String
}) {
  readonly code = "payment_unavailable"
}

export class PaymentGateway extends Context.Tag("@tessera/runtime/PaymentGateway")<PaymentGateway, {
  readonly name: string
  readonly charge: (request: ChargeRequest) => Effect.Effect<Charge, PaymentRefused | PaymentUnavailable>
  readonly refund: (request: RefundRequest) => Effect.Effect<Refund, PaymentRefused | PaymentUnavailable>
  readonly balance: (tenantId: string, currency: string) => Effect.Effect<number, PaymentUnavailable>
}>() {}
