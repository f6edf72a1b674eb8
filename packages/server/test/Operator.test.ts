/**
 * The operator API through real HTTP against a started node: a tenant created with the operator
 * token gets a working `owner` key, shows up in the paged list and in its own audit log; a taken
 * or invalid id is refused; a wrong or missing token is 401; a node without an operator token
 * answers 404 as for a route that does not exist. `tessera dev`'s demo file carries a generated token.
 */
import { assert, layer } from "@effect/vitest"
import { Database } from "@tessera/runtime/Database"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Demo from "../src/Demo.js"
import * as EdgeNode from "./EdgeNode.js"

const { http } = EdgeNode

const operatorToken = `top_${"x".repeat(40)}`
const operator = { key: operatorToken }

const failed = (reply: EdgeNode.Reply, status: number, code: string) => {
  assert.strictEqual(reply.status, status, reply.text)
  assert.strictEqual(reply.body.code, code, reply.text)
  assert.strictEqual(reply.body.request_id, reply.headers.get("x-request-id"))
}

layer(EdgeNode.layer({ TESSERA_OPERATOR_TOKEN: operatorToken }), { timeout: 120_000, excludeTestServices: true })("Operator API", (it) => {
  it.effect("creates a tenant with a working owner key, audit-logged in the new tenant", () =>
    Effect.gen(function*() {
      const created = yield* http("POST", "/v1/operator/tenants", {
        ...operator,
        body: { id: "acme", name: "Acme Corp", plan: "pro" },
        // Operator routes are not replayed by Idempotency-Key (no tenant to keep them under); the header is harmless.
        headers: { "x-request-id": "req-op-create", "idempotency-key": "create-acme" }
      })
      assert.strictEqual(created.status, 201, created.text)
      const tenant = created.body.tenant as { id: string; name: string; plan: { name: string } }
      assert.deepInclude(tenant, { id: "acme", name: "Acme Corp" })
      assert.strictEqual(tenant.plan.name, "pro")
      const key = created.body.key as { id: string; scopes: ReadonlyArray<string>; tenantId: string }
      assert.strictEqual(key.tenantId, "acme")
      assert.sameMembers([...key.scopes], ["read", "write", "admin"])
      const apiKey = String(created.body.api_key)
      assert.match(apiKey, /^tsk_/)

      // The key works, in the new tenant, with admin rights.
      const me = yield* http("GET", "/v1/auth/whoami", { key: apiKey })
      assert.strictEqual(me.status, 200, me.text)
      assert.strictEqual(me.body.tenantId, "acme")
      const config = yield* http("GET", "/v1/admin/tenant", { key: apiKey })
      assert.strictEqual(config.status, 200, config.text)
      assert.strictEqual(config.body.name, "Acme Corp")

      const db = yield* Database
      const audit = yield* db.tenant("acme")(db.sql<{ actor: string; resource: string; request_id: string | null; details: { owner_key: string } }>`
        SELECT actor, resource, request_id, details FROM audit_logs WHERE tenant_id = 'acme' AND action = 'tenant.create'`)
      assert.strictEqual(audit.length, 1)
      assert.deepInclude(audit[0]!, { actor: "operator", resource: "tenant/acme", request_id: "req-op-create" })
      assert.strictEqual(audit[0]!.details.owner_key, key.id)
    }))

  it.effect("a taken id is 409 tenant_exists, also with the same name and under concurrency; an invalid id is 400", () =>
    Effect.gen(function*() {
      const body = { id: "globex", name: "Globex", plan: "free" }
      const replies = yield* Effect.all(
        Array.from({ length: 4 }, () => http("POST", "/v1/operator/tenants", { ...operator, body })),
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(replies.map((r) => r.status).sort(), [201, 409, 409, 409], replies.map((r) => r.text).join("\n"))
      for (const reply of replies.filter((r) => r.status === 409)) failed(reply, 409, "tenant_exists")
      failed(yield* http("POST", "/v1/operator/tenants", { ...operator, body: { ...body, name: "Other" } }), 409, "tenant_exists")

      const db = yield* Database
      const keys = yield* db.tenant("globex")(db.sql<{ id: string }>`SELECT id FROM api_keys WHERE tenant_id = 'globex'`)
      assert.strictEqual(keys.length, 1, "one owner key, from the one creation")

      const invalid = yield* http("POST", "/v1/operator/tenants", { ...operator, body: { id: "no spaces!", name: "X", plan: "pro" } })
      failed(invalid, 400, "invalid_request")
      assert.include(invalid.text, "id")
      failed(yield* http("POST", "/v1/operator/tenants", { ...operator, body: { id: "ok_id", name: "X", plan: "platinum" } }), 400, "invalid_request")
    }))

  it.effect("without an id a fresh one is given; the list pages through every tenant in id order", () =>
    Effect.gen(function*() {
      const fresh = yield* http("POST", "/v1/operator/tenants", { ...operator, body: { name: "  Initech  ", plan: "enterprise" } })
      assert.strictEqual(fresh.status, 201, fresh.text)
      const tenant = fresh.body.tenant as { id: string; name: string }
      assert.match(tenant.id, /^t_[0-9a-f]{16}$/)
      assert.strictEqual(tenant.name, "Initech")
      for (const id of ["page_a", "page_b", "page_c"]) {
        assert.strictEqual((yield* http("POST", "/v1/operator/tenants", { ...operator, body: { id, name: id, plan: "free" } })).status, 201)
      }

      const seen: Array<string> = []
      let after: string | null = null
      let pages = 0
      do {
        const query: string = after === null ? "?limit=2" : `?limit=2&after=${after}`
        const page = yield* http("GET", `/v1/operator/tenants${query}`, operator)
        assert.strictEqual(page.status, 200, page.text)
        const tenants = page.body.tenants as ReadonlyArray<{ id: string }>
        assert.isAtMost(tenants.length, 2)
        seen.push(...tenants.map((t) => t.id))
        after = page.body.next as string | null
        pages++
      } while (after !== null && pages < 50)
      const db = yield* Database
      const all = (yield* db.system(db.sql<{ tenant_id: string }>`SELECT tenant_id FROM tenants ORDER BY tenant_id`)).map((r) => r.tenant_id)
      assert.deepStrictEqual(seen, all)
      assert.includeMembers(seen, ["page_a", "page_b", "page_c", tenant.id])
      failed(yield* http("GET", "/v1/operator/tenants?limit=0", operator), 400, "invalid_request")
    }))

  it.effect("a missing or wrong operator token is 401; a tenant's admin key is not an operator token", () =>
    Effect.gen(function*() {
      const body = { id: "intruder", name: "Intruder", plan: "pro" }
      failed(yield* http("POST", "/v1/operator/tenants", { body }), 401, "invalid_operator_token")
      failed(yield* http("POST", "/v1/operator/tenants", { key: `${operatorToken}y`, body }), 401, "invalid_operator_token")
      const admin = yield* EdgeNode.tenant("umbrella")
      failed(yield* http("GET", "/v1/operator/tenants", { key: admin.key }), 401, "invalid_operator_token")
      const db = yield* Database
      assert.lengthOf(yield* db.system(db.sql`SELECT 1 FROM tenants WHERE tenant_id = 'intruder'`), 0)
    }))

  it.effect("tessera dev writes a generated operator token to demo.json and reuses it; a configured one is not written", () =>
    Effect.gen(function*() {
      const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "tessera-demo-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })))
      const read = () => JSON.parse(Fs.readFileSync(Path.join(dir, "demo.json"), "utf8")) as Record<string, unknown>
      const first = yield* Demo.provision({ dir, baseUrl: "http://localhost:1", operatorToken: Option.none() })
      assert.match(String(first.operatorToken), /^top_[A-Za-z0-9_-]{43}$/)
      assert.strictEqual(read().operatorToken, first.operatorToken)
      const again = yield* Demo.provision({ dir, baseUrl: "http://localhost:1", operatorToken: Option.none() })
      assert.strictEqual(again.operatorToken, first.operatorToken)
      assert.strictEqual(again.apiKey, first.apiKey)
      yield* Demo.provision({ dir, baseUrl: "http://localhost:1", operatorToken: Option.some(Redacted.make(operatorToken)) })
      assert.notProperty(read(), "operatorToken")
    }).pipe(Effect.provide(NodeContext.layer), Effect.scoped))
})

layer(EdgeNode.layer(), { timeout: 120_000, excludeTestServices: true })("Operator API without an operator token", (it) => {
  it.effect("its routes answer 404 exactly as a route that does not exist", () =>
    Effect.gen(function*() {
      const absent = yield* http("GET", "/v1/no-such-route", operator)
      failed(absent, 404, "route_not_found")
      for (
        const reply of [
          yield* http("GET", "/v1/operator/tenants", operator),
          yield* http("POST", "/v1/operator/tenants", { ...operator, body: { id: "nope", name: "Nope", plan: "pro" } }),
          yield* http("GET", "/v1/operator/tenants")
        ]
      ) {
        failed(reply, 404, "route_not_found")
        assert.strictEqual(reply.body.message, absent.body.message)
      }
      const db = yield* Database
      assert.lengthOf(yield* db.system(db.sql`SELECT 1 FROM tenants WHERE tenant_id = 'nope'`), 0)
    }))
})
