/**
 * The tables behind the built-in tools, and the journal columns the workflow executor records.
 *
 * - `orders` + `order_items`: an order is `reserved` (stock held), then `confirmed` or `cancelled`.
 * - `payment_charges`, `payment_refunds`, `payment_balances`: the sandbox payment ledger (real
 *   rows, real balances) behind the `PaymentGateway` port.
 * - `leads`, `tickets` (human hand-off), `email_outbox` (what `notify.email` sends),
 *   `tenant_http_endpoints` (where the `http` tool may call, with the HMAC secret it signs with).
 * - `tool_calls`: one row per side effect, keyed by its idempotency key (run id + step id, plus
 *   the attempt only for idempotent tools), holding the first result so a replay returns it.
 * - `run_steps` gains outcome, tier, tokens, cost, attempts, error and the next step chosen;
 *   compensation steps are journaled there too. `run_signals`: signals a `wait` step waits for.
 *
 * Every table is tenant-owned (row-level security forced; see tenantOwned.ts). The system role
 * gets what the journal writer's group commit needs (see the end of the migration).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { tenantOwned } from "./tenantOwned.js"

const tenantTables = [
  "orders",
  "order_items",
  "payment_charges",
  "payment_refunds",
  "payment_balances",
  "leads",
  "tickets",
  "email_outbox",
  "tenant_http_endpoints",
  "tool_calls",
  "run_signals"
] as const

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient

  yield* sql`
    CREATE TABLE orders (
      tenant_id text NOT NULL,
      id text NOT NULL,
      customer_email text NOT NULL,
      status text NOT NULL CHECK (status IN ('reserved', 'confirmed', 'cancelled')),
      fulfillment text NOT NULL DEFAULT 'pending' CHECK (fulfillment IN ('pending', 'shipped', 'delivered')),
      tracking_number text,
      currency text NOT NULL,
      total_cents bigint NOT NULL CHECK (total_cents >= 0),
      shipping_address text,
      cancel_reason text,
      created_by_run text,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (tenant_id, id)
    )`

  yield* sql`
    CREATE TABLE order_items (
      tenant_id text NOT NULL,
      order_id text NOT NULL,
      line integer NOT NULL,
      sku text NOT NULL,
      name text NOT NULL,
      quantity integer NOT NULL CHECK (quantity > 0),
      unit_price_cents bigint NOT NULL CHECK (unit_price_cents >= 0),
      created_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (tenant_id, order_id, line),
      FOREIGN KEY (tenant_id, order_id) REFERENCES orders(tenant_id, id) ON DELETE CASCADE
    )`

  yield* sql`
    CREATE TABLE payment_charges (
      tenant_id text NOT NULL,
      id text NOT NULL,
      order_id text,
      customer text NOT NULL,
      amount_cents bigint NOT NULL CHECK (amount_cents > 0),
      refunded_cents bigint NOT NULL DEFAULT 0 CHECK (refunded_cents >= 0 AND refunded_cents <= amount_cents),
      currency text NOT NULL,
      status text NOT NULL CHECK (status IN ('succeeded', 'partially_refunded', 'refunded')),
      idempotency_key text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (tenant_id, id),
      UNIQUE (tenant_id, idempotency_key)
    )`

  yield* sql`
    CREATE TABLE payment_refunds (
      tenant_id text NOT NULL,
      id text NOT NULL,
      charge_id text NOT NULL,
      amount_cents bigint NOT NULL CHECK (amount_cents > 0),
      reason text NOT NULL,
      idempotency_key text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (tenant_id, id),
      UNIQUE (tenant_id, idempotency_key),
      FOREIGN KEY (tenant_id, charge_id) REFERENCES payment_charges(tenant_id, id)
    )`

  yield* sql`
    CREATE TABLE payment_balances (
      tenant_id text NOT NULL,
      currency text NOT NULL,
      available_cents bigint NOT NULL DEFAULT 0,
      charged_cents bigint NOT NULL DEFAULT 0,
      refunded_cents bigint NOT NULL DEFAULT 0,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (tenant_id, currency)
    )`

  yield* sql`
    CREATE TABLE leads (
      tenant_id text NOT NULL,
      id text NOT NULL,
      name text NOT NULL,
      email text NOT NULL,
      company text,
      message text NOT NULL DEFAULT '',
      score integer,
      qualification text CHECK (qualification IN ('hot', 'warm', 'cold')),
      created_by_run text,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (tenant_id, id)
    )`
  yield* sql`CREATE INDEX leads_email ON leads (tenant_id, lower(email))`

  yield* sql`
    CREATE TABLE tickets (
      tenant_id text NOT NULL,
      id text NOT NULL,
      subject text NOT NULL,
      body text NOT NULL,
      category text NOT NULL DEFAULT 'general',
      priority text NOT NULL CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
      status text NOT NULL CHECK (status IN ('open', 'escalated', 'closed')),
      queue text NOT NULL DEFAULT 'support',
      customer_email text,
      session_id text,
      run_id text,
      escalation_reason text,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (tenant_id, id)
    )`

  yield* sql`
    CREATE TABLE email_outbox (
      tenant_id text NOT NULL,
      id text NOT NULL,
      recipient text NOT NULL,
      subject text NOT NULL,
      body text NOT NULL,
      template text,
      status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'sent', 'failed')),
      run_id text,
      created_at timestamptz NOT NULL DEFAULT now(),
      sent_at timestamptz,
      PRIMARY KEY (tenant_id, id)
    )`

  yield* sql`
    CREATE TABLE tenant_http_endpoints (
      tenant_id text NOT NULL,
      name text NOT NULL,
      url text NOT NULL,
      secret text NOT NULL,
      timeout_ms integer NOT NULL DEFAULT 5000 CHECK (timeout_ms > 0),
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (tenant_id, name)
    )`

  yield* sql`
    CREATE TABLE tool_calls (
      tenant_id text NOT NULL,
      idempotency_key text NOT NULL,
      run_id text NOT NULL,
      step_id text NOT NULL,
      tool text NOT NULL,
      input jsonb NOT NULL,
      result jsonb NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (tenant_id, idempotency_key)
    )`

  yield* sql`ALTER TABLE run_steps
    ADD COLUMN outcome text,
    ADD COLUMN tier text,
    ADD COLUMN tokens integer NOT NULL DEFAULT 0,
    ADD COLUMN cost_usd numeric(18, 6) NOT NULL DEFAULT 0,
    ADD COLUMN attempts integer NOT NULL DEFAULT 1,
    ADD COLUMN error text,
    ADD COLUMN next_step text`

  yield* sql`
    CREATE TABLE run_signals (
      tenant_id text NOT NULL,
      run_id text NOT NULL,
      name text NOT NULL,
      payload jsonb NOT NULL DEFAULT '{}',
      created_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (tenant_id, run_id, name),
      FOREIGN KEY (tenant_id, run_id) REFERENCES agent_runs(tenant_id, id)
    )`

  for (const table of tenantTables) yield* tenantOwned(sql, table)

  // The journal writer group-commits the steps of every tenant's runs in one statement as the
  // system role (JournalWriter): it may read and insert step rows, move a run's status and output,
  // and add outbox rows — nothing else, and no delete.
  yield* sql`GRANT SELECT, INSERT ON run_steps TO tessera_system`
  yield* sql`CREATE POLICY system_journal_read ON run_steps FOR SELECT TO tessera_system USING (true)`
  yield* sql`CREATE POLICY system_journal_write ON run_steps FOR INSERT TO tessera_system WITH CHECK (true)`
  yield* sql`GRANT UPDATE (status, attempts, runner, output, error, finished_at, updated_at) ON agent_runs TO tessera_system`
  yield* sql`CREATE POLICY system_journal_update ON agent_runs FOR UPDATE TO tessera_system USING (true) WITH CHECK (true)`
  yield* sql`GRANT INSERT ON outbox TO tessera_system`
  yield* sql`GRANT USAGE ON SEQUENCE outbox_seq_seq TO tessera_system`
})
