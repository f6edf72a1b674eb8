/**
 * The order tools, on the tenant's `orders` and `order_items` tables. An order is created
 * `reserved` (its stock held), then `confirmed` (orders.modify with `confirm`) or `cancelled`
 * (orders.cancel, which is also orders.create's compensation: it releases the reservation).
 * Every tool runs inside the tenant transaction the registry opens (`transactional`), so an
 * order and the call's idempotency record commit together.
 */
import { ToolFailed } from "@tessera/domain/ToolError"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { Database } from "./Database.js"
import { stableId } from "./internal/stableId.js"
import * as Tool from "./Tool.js"

const Email = Schema.String.pipe(
  Schema.pattern(/^[^\s@]+@[^\s@]+\.[^\s@]+$/, { message: () => "must be an email address" })
)
const Currency = Schema.String.pipe(Schema.pattern(/^[A-Z]{3}$/, { message: () => "must be a 3-letter ISO currency code" }))
const Cents = Schema.Int.pipe(Schema.nonNegative())

export const Item = Schema.Struct({
  sku: Schema.String.pipe(Schema.minLength(1)),
  name: Schema.optionalWith(Schema.String, { default: () => "" }),
  quantity: Schema.Int.pipe(Schema.positive()),
  unit_price_cents: Cents
})

export const OrderStatus = Schema.Literal("reserved", "confirmed", "cancelled")
export const Fulfillment = Schema.Literal("pending", "shipped", "delivered")

export const Order = Schema.Struct({
  order_id: Schema.String,
  status: OrderStatus,
  fulfillment: Fulfillment,
  tracking_number: Schema.NullOr(Schema.String),
  customer_email: Schema.String,
  currency: Schema.String,
  total_cents: Schema.Int,
  shipping_address: Schema.NullOr(Schema.String),
  items: Schema.Array(Schema.Struct({ sku: Schema.String, name: Schema.String, quantity: Schema.Int, unit_price_cents: Schema.Int }))
})

export const CreateInput = Schema.Struct({
  customer_email: Email,
  items: Schema.NonEmptyArray(Item),
  currency: Schema.optionalWith(Currency, { default: () => "USD" }),
  shipping_address: Schema.optional(Schema.String)
})
export const CreateOutput = Schema.Struct({
  order_id: Schema.String,
  status: OrderStatus,
  total_cents: Schema.Int,
  currency: Schema.String
})

const OrderRef = Schema.Struct({ order_id: Schema.String.pipe(Schema.minLength(1)) })

export const TrackOutput = Schema.Struct({
  order_id: Schema.String,
  status: OrderStatus,
  fulfillment: Fulfillment,
  tracking_number: Schema.NullOr(Schema.String)
})

export const CancelInput = Schema.Struct({
  order_id: Schema.String.pipe(Schema.minLength(1)),
  reason: Schema.optionalWith(Schema.String, { default: () => "cancelled by request" })
})
export const CancelOutput = Schema.Struct({
  order_id: Schema.String,
  status: Schema.Literal("cancelled"),
  previous_status: OrderStatus
})

export const ModifyInput = Schema.Struct({
  order_id: Schema.String.pipe(Schema.minLength(1)),
  confirm: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  shipping_address: Schema.optional(Schema.String)
})

interface OrderRow {
  readonly id: string
  readonly status: typeof OrderStatus.Type
  readonly fulfillment: typeof Fulfillment.Type
  readonly tracking_number: string | null
  readonly customer_email: string
  readonly currency: string
  readonly total_cents: string
  readonly shipping_address: string | null
  readonly items: ReadonlyArray<{ sku: string; name: string; quantity: number; unit_price_cents: number }>
}

export const make = Effect.gen(function*() {
  const { sql } = yield* Database

  const find = (tool: string, tenantId: string, orderId: string, lock: boolean) =>
    sql<OrderRow>`
      SELECT o.id, o.status, o.fulfillment, o.tracking_number, o.customer_email, o.currency, o.total_cents,
        o.shipping_address, coalesce((SELECT json_agg(json_build_object('sku', i.sku, 'name', i.name,
          'quantity', i.quantity, 'unit_price_cents', i.unit_price_cents) ORDER BY i.line)
          FROM order_items i WHERE i.tenant_id = o.tenant_id AND i.order_id = o.id), '[]') AS items
      FROM orders o WHERE o.tenant_id = ${tenantId} AND o.id = ${orderId} ${lock ? sql`FOR UPDATE` : sql``}`.pipe(
      Effect.mapError(Tool.storageFailure(tool)),
      Effect.flatMap((rows) =>
        rows[0] === undefined
          ? Effect.fail(new ToolFailed({ tool, reason: `order ${orderId} does not exist`, retryable: false }))
          : Effect.succeed(rows[0])
      )
    )

  const toOrder = (row: OrderRow): typeof Order.Type => ({
    order_id: row.id,
    status: row.status,
    fulfillment: row.fulfillment,
    tracking_number: row.tracking_number,
    customer_email: row.customer_email,
    currency: row.currency,
    total_cents: Number(row.total_cents),
    shipping_address: row.shipping_address,
    items: row.items.map((i) => ({ ...i, unit_price_cents: Number(i.unit_price_cents) }))
  })

  const create = Tool.make({
    name: "orders.create",
    description: "Reserves a new order for a customer; orders.cancel releases it.",
    input: CreateInput,
    output: CreateOutput,
    timeout: "5 seconds",
    retry: Tool.ioRetry,
    idempotent: false,
    transactional: true,
    compensate: (_, output) => ({ tool: "orders.cancel", input: { order_id: output.order_id, reason: "compensation" } }),
    run: (input, context) =>
      Effect.gen(function*() {
        const orderId = stableId("ord", context.idempotencyKey)
        const total = input.items.reduce((sum, item) => sum + item.quantity * item.unit_price_cents, 0)
        yield* sql`INSERT INTO orders ${
          sql.insert({
            tenant_id: context.tenantId,
            id: orderId,
            customer_email: input.customer_email,
            status: "reserved",
            currency: input.currency,
            total_cents: total,
            shipping_address: input.shipping_address ?? null,
            created_by_run: context.runId
          })
        }`
        yield* sql`INSERT INTO order_items ${
          sql.insert(input.items.map((item, line) => ({
            tenant_id: context.tenantId,
            order_id: orderId,
            line,
            sku: item.sku,
            name: item.name === "" ? item.sku : item.name,
            quantity: item.quantity,
            unit_price_cents: item.unit_price_cents
          })))
        }`
        return { order_id: orderId, status: "reserved" as const, total_cents: total, currency: input.currency }
      }).pipe(Effect.mapError(Tool.storageFailure("orders.create")))
  })

  const get = Tool.make({
    name: "orders.get",
    description: "An order with its items.",
    input: OrderRef,
    output: Order,
    timeout: "5 seconds",
    retry: Tool.ioRetry,
    idempotent: true,
    transactional: true,
    run: (input, context) => Effect.map(find("orders.get", context.tenantId, input.order_id, false), toOrder)
  })

  const track = Tool.make({
    name: "orders.track",
    description: "Where an order is: its status, fulfillment and tracking number.",
    input: OrderRef,
    output: TrackOutput,
    timeout: "5 seconds",
    retry: Tool.ioRetry,
    idempotent: true,
    transactional: true,
    run: (input, context) =>
      Effect.map(find("orders.track", context.tenantId, input.order_id, false), (row) => ({
        order_id: row.id,
        status: row.status,
        fulfillment: row.fulfillment,
        tracking_number: row.tracking_number
      }))
  })

  const cancel = Tool.make({
    name: "orders.cancel",
    description: "Cancels an order that has not shipped and releases its reservation.",
    input: CancelInput,
    output: CancelOutput,
    timeout: "5 seconds",
    retry: Tool.ioRetry,
    idempotent: false,
    transactional: true,
    run: (input, context) =>
      Effect.gen(function*() {
        const row = yield* find("orders.cancel", context.tenantId, input.order_id, true)
        if (row.fulfillment !== "pending") {
          return yield* new ToolFailed({
            tool: "orders.cancel",
            reason: `order ${row.id} has already ${row.fulfillment === "shipped" ? "shipped" : "been delivered"}`,
            retryable: false
          })
        }
        if (row.status !== "cancelled") {
          yield* sql`UPDATE orders SET status = 'cancelled', cancel_reason = ${input.reason}, updated_at = now()
            WHERE tenant_id = ${context.tenantId} AND id = ${row.id}`.pipe(Effect.mapError(Tool.storageFailure("orders.cancel")))
        }
        return { order_id: row.id, status: "cancelled" as const, previous_status: row.status }
      })
  })

  const modify = Tool.make({
    name: "orders.modify",
    description: "Confirms a reserved order and/or changes the shipping address of an order that has not shipped.",
    input: ModifyInput,
    output: Order,
    timeout: "5 seconds",
    retry: Tool.ioRetry,
    idempotent: false,
    transactional: true,
    run: (input, context) =>
      Effect.gen(function*() {
        const tool = "orders.modify"
        const row = yield* find(tool, context.tenantId, input.order_id, true)
        if (row.status === "cancelled") {
          return yield* new ToolFailed({ tool, reason: `order ${row.id} is cancelled`, retryable: false })
        }
        if (input.shipping_address !== undefined && row.fulfillment !== "pending") {
          return yield* new ToolFailed({ tool, reason: `order ${row.id} has already shipped`, retryable: false })
        }
        const status = input.confirm ? "confirmed" : row.status
        const address = input.shipping_address ?? row.shipping_address
        yield* sql`UPDATE orders SET status = ${status}, shipping_address = ${address}, updated_at = now()
          WHERE tenant_id = ${context.tenantId} AND id = ${row.id}`.pipe(Effect.mapError(Tool.storageFailure(tool)))
        return toOrder({ ...row, status, shipping_address: address })
      })
  })

  return [create, get, track, cancel, modify] as const
})
