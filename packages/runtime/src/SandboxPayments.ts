/**
 * The sandbox payment gateway: a ledger in the tenant's Postgres (`payment_charges`,
 * `payment_refunds`, `payment_balances`) with real rows and real balances, standing in for a
 * card processor. A charge with an idempotency key already used returns the first charge; so
 * does a refund. `pm_card_declined` is declined, like Stripe's test card of that name.
 * Each call is one tenant transaction (a savepoint when the caller already holds one).
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Database } from "./Database.js"
import { stableId } from "./internal/stableId.js"
import { Charge, PaymentGateway, PaymentRefused, PaymentUnavailable, Refund } from "./PaymentGateway.js"

export const declinedMethod = "pm_card_declined"

interface ChargeRow {
  readonly id: string
  readonly amount_cents: string
  readonly refunded_cents: string
  readonly currency: string
  readonly status: "succeeded" | "partially_refunded" | "refunded"
}

interface RefundRow {
  readonly id: string
  readonly charge_id: string
  readonly amount_cents: string
}

const toCharge = (row: ChargeRow) =>
  new Charge({
    chargeId: row.id,
    amountCents: Number(row.amount_cents),
    refundedCents: Number(row.refunded_cents),
    currency: row.currency,
    status: row.status
  })

export const make = Effect.gen(function*() {
  const db = yield* Database
  const sql = db.sql
  const unavailable = (error: { readonly message: string }) => new PaymentUnavailable({ reason: error.message })

  const moveBalance = (tenantId: string, currency: string, charged: number, refunded: number) =>
    sql`INSERT INTO payment_balances ${
      sql.insert({
        tenant_id: tenantId,
        currency,
        available_cents: charged - refunded,
        charged_cents: charged,
        refunded_cents: refunded
      })
    } ON CONFLICT (tenant_id, currency) DO UPDATE SET
        available_cents = payment_balances.available_cents + excluded.available_cents,
        charged_cents = payment_balances.charged_cents + excluded.charged_cents,
        refunded_cents = payment_balances.refunded_cents + excluded.refunded_cents,
        updated_at = now()`

  return PaymentGateway.of({
    name: "sandbox",
    charge: (request) =>
      db.tenant(request.tenantId)(Effect.gen(function*() {
        const previous = yield* sql<ChargeRow>`SELECT id, amount_cents, refunded_cents, currency, status FROM payment_charges
          WHERE tenant_id = ${request.tenantId} AND idempotency_key = ${request.idempotencyKey}`
        if (previous[0] !== undefined) return toCharge(previous[0])
        if (request.paymentMethod === declinedMethod) {
          return yield* new PaymentRefused({ reason: "card declined" })
        }
        if (request.amountCents <= 0) return yield* new PaymentRefused({ reason: "amount must be positive" })
        const rows = yield* sql<ChargeRow>`INSERT INTO payment_charges ${
          sql.insert({
            tenant_id: request.tenantId,
            id: stableId("ch", request.idempotencyKey),
            order_id: request.orderId,
            customer: request.customer,
            amount_cents: request.amountCents,
            currency: request.currency,
            status: "succeeded",
            idempotency_key: request.idempotencyKey
          })
        } RETURNING id, amount_cents, refunded_cents, currency, status`
        yield* moveBalance(request.tenantId, request.currency, request.amountCents, 0)
        return toCharge(rows[0]!)
      })).pipe(Effect.catchTag("SqlError", (error) => Effect.fail(unavailable(error)))),

    refund: (request) =>
      db.tenant(request.tenantId)(Effect.gen(function*() {
        const previous = yield* sql<RefundRow & { readonly currency: string }>`
          SELECT r.id, r.charge_id, r.amount_cents, c.currency FROM payment_refunds r
          JOIN payment_charges c ON c.tenant_id = r.tenant_id AND c.id = r.charge_id
          WHERE r.tenant_id = ${request.tenantId} AND r.idempotency_key = ${request.idempotencyKey}`
        if (previous[0] !== undefined) {
          const row = previous[0]
          return new Refund({ refundId: row.id, chargeId: row.charge_id, amountCents: Number(row.amount_cents), currency: row.currency })
        }
        const charges = yield* sql<ChargeRow>`SELECT id, amount_cents, refunded_cents, currency, status FROM payment_charges
          WHERE tenant_id = ${request.tenantId} AND id = ${request.chargeId} FOR UPDATE`
        const charge = charges[0]
        if (charge === undefined) return yield* new PaymentRefused({ reason: `charge ${request.chargeId} does not exist` })
        const remaining = Number(charge.amount_cents) - Number(charge.refunded_cents)
        const amount = request.amountCents ?? remaining
        if (amount <= 0 || amount > remaining) {
          return yield* new PaymentRefused({
            reason: `cannot refund ${amount} of charge ${charge.id}: ${remaining} ${charge.currency} cents left to refund`
          })
        }
        const refundId = stableId("re", request.idempotencyKey)
        yield* sql`INSERT INTO payment_refunds ${
          sql.insert({
            tenant_id: request.tenantId,
            id: refundId,
            charge_id: charge.id,
            amount_cents: amount,
            reason: request.reason,
            idempotency_key: request.idempotencyKey
          })
        }`
        const status = amount === remaining ? "refunded" : "partially_refunded"
        yield* sql`UPDATE payment_charges SET refunded_cents = refunded_cents + ${amount}, status = ${status}, updated_at = now()
          WHERE tenant_id = ${request.tenantId} AND id = ${charge.id}`
        yield* moveBalance(request.tenantId, charge.currency, 0, amount)
        return new Refund({ refundId, chargeId: charge.id, amountCents: amount, currency: charge.currency })
      })).pipe(Effect.catchTag("SqlError", (error) => Effect.fail(unavailable(error)))),

    balance: (tenantId, currency) =>
      db.tenant(tenantId)(sql<{ available_cents: string }>`SELECT available_cents FROM payment_balances
        WHERE tenant_id = ${tenantId} AND currency = ${currency}`).pipe(
        Effect.map((rows) => Number(rows[0]?.available_cents ?? 0)),
        Effect.mapError(unavailable)
      )
  })
})

export const layer: Layer.Layer<PaymentGateway, never, Database> = Layer.effect(PaymentGateway, make)
