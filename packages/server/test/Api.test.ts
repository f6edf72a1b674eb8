/**
 * The HTTP API through real HTTP against a started node (Postgres, cluster, workflows, local
 * model): the chat round trip, the error shape, tenant isolation, scopes, revocation, body
 * limits, malformed input, injection strings and idempotent retries.
 */
import { assert, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { Database } from "@tessera/runtime/Database"
import * as EdgeNode from "./EdgeNode.js"

const { http, tenant } = EdgeNode

const errorShape = (reply: EdgeNode.Reply, status: number, code: string) => {
  assert.strictEqual(reply.status, status, reply.text)
  assert.strictEqual(reply.body.code, code, reply.text)
  assert.isString(reply.body.message)
  assert.isTrue("details" in reply.body)
  assert.strictEqual(reply.body.request_id, reply.headers.get("x-request-id"))
}

layer(EdgeNode.layer({ HTTP_MAX_BODY_BYTES: "65536", CHAT_DEADLINE: "20 seconds" }), { timeout: 120_000, excludeTestServices: true })("Api", (it) => {
  it.effect("chat round trip: an answer with session, run, tier, citations and usage; the run and history follow", () =>
    Effect.gen(function*() {
      const alpha = yield* tenant("alpha")
      const reply = yield* http("POST", "/v1/chat/messages", {
        key: alpha.key,
        body: { message: "How long do refunds take?", user_id: "u_1", channel: "web" }
      })
      assert.strictEqual(reply.status, 200, reply.text)
      assert.isString(reply.body.answer)
      assert.isTrue(String(reply.body.answer).length > 0)
      assert.match(String(reply.body.run_id), /^run_/)
      assert.match(String(reply.body.session_id), /^s_/)
      assert.strictEqual(reply.body.status, "completed")
      assert.isArray(reply.body.citations)
      assert.isTrue("tier" in reply.body)
      assert.isObject(reply.body.usage)

      const run = yield* http("GET", `/v1/runs/${String(reply.body.run_id)}`, { key: alpha.key })
      assert.strictEqual(run.status, 200, run.text)
      assert.strictEqual(run.body.status, "completed")
      assert.isTrue(Array.isArray(run.body.steps) && run.body.steps.length > 0)

      const history = yield* http("GET", `/v1/sessions/${String(reply.body.session_id)}/messages`, { key: alpha.key })
      assert.strictEqual(history.status, 200, history.text)
      assert.isTrue(Array.isArray(history.body.entries) && history.body.entries.length >= 1)

      // The same session goes on with a second message.
      const again = yield* http("POST", "/v1/chat/messages", {
        key: alpha.key,
        body: { message: "And for damaged items?", user_id: "u_1", session_id: reply.body.session_id }
      })
      assert.strictEqual(again.status, 200, again.text)
      assert.strictEqual(again.body.session_id, reply.body.session_id)
    }))

  it.effect("the run's events come as Server-Sent Events ending with the final answer", () =>
    Effect.gen(function*() {
      const alpha = yield* tenant("alpha")
      const chat = yield* http("POST", "/v1/chat/messages", { key: alpha.key, body: { message: "hello", user_id: "u_sse" } })
      const events = yield* http("GET", `/v1/runs/${String(chat.body.run_id)}/events`, { key: alpha.key })
      assert.strictEqual(events.status, 200)
      assert.match(events.headers.get("content-type") ?? "", /text\/event-stream/)
      assert.include(events.text, "event: step")
      assert.include(events.text, "event: final")
    }))

  it.effect("missing, unknown and revoked credentials are 401 in the one error shape", () =>
    Effect.gen(function*() {
      errorShape(yield* http("GET", "/v1/auth/whoami"), 401, "missing_credentials")
      errorShape(yield* http("GET", "/v1/auth/whoami", { key: `tsk_${"A".repeat(43)}` }), 401, "invalid_api_key")
      const alpha = yield* tenant("alpha")
      const ok = yield* http("GET", "/v1/auth/whoami", { headers: { "x-api-key": alpha.key } })
      assert.strictEqual(ok.status, 200, ok.text)
      assert.strictEqual(ok.body.tenantId, "alpha")

      const revoked = yield* http("POST", `/v1/admin/api-keys/${alpha.keyId}/revoke`, { key: alpha.key })
      assert.strictEqual(revoked.status, 200, revoked.text)
      assert.isNotNull(revoked.body.revokedAt)
      errorShape(yield* http("GET", "/v1/auth/whoami", { key: alpha.key }), 401, "invalid_api_key")
      assert.strictEqual((yield* http("GET", "/v1/auth/whoami", { key: alpha.key })).headers.get("www-authenticate")?.startsWith("Bearer"), true)
    }))

  it.effect("a key of tenant A on tenant B's session, run and document ids is 404, exactly as an unknown id", () =>
    Effect.gen(function*() {
      const alpha = yield* tenant("alpha")
      const beta = yield* tenant("beta")
      const chat = yield* http("POST", "/v1/chat/messages", { key: beta.key, body: { message: "beta's secret question", user_id: "u_b" } })
      assert.strictEqual(chat.status, 200, chat.text)
      const doc = yield* http("POST", "/v1/knowledge/documents", {
        key: beta.key,
        body: { sourceKey: "beta-faq", title: "Beta FAQ", format: "text", content: "Beta's private refund policy." }
      })
      assert.strictEqual(doc.status, 201, doc.text)

      const probes = [
        ["GET", `/v1/runs/${String(chat.body.run_id)}`],
        ["POST", `/v1/runs/${String(chat.body.run_id)}/cancel`],
        ["GET", `/v1/sessions/${String(chat.body.session_id)}/messages`],
        ["GET", `/v1/knowledge/documents/${String(doc.body.id)}`],
        ["DELETE", `/v1/knowledge/documents/${String(doc.body.id)}`]
      ] as const
      for (const [method, path] of probes) {
        const reply = yield* http(method, path, { key: alpha.key, ...(method === "POST" ? { body: {} } : {}) })
        assert.strictEqual(reply.status, 404, `${method} ${path}: ${reply.text}`)
        assert.notInclude(reply.text, "secret")
        assert.notInclude(reply.text, "private")
      }
      const chatInB = yield* http("POST", "/v1/chat/messages", {
        key: alpha.key,
        body: { message: "hi", user_id: "u_a", session_id: chat.body.session_id }
      })
      errorShape(chatInB, 404, "session_not_found")
      // Beta still sees its own.
      assert.strictEqual((yield* http("GET", `/v1/runs/${String(chat.body.run_id)}`, { key: beta.key })).status, 200)
      // A tenant_id in the body is never the tenant: another one is refused.
      errorShape(
        yield* http("POST", "/v1/chat/messages", { key: alpha.key, body: { message: "hi", user_id: "u_a", tenant_id: "beta" } }),
        403,
        "tenant_mismatch"
      )
      errorShape(
        yield* http("POST", "/v1/sessions", { key: alpha.key, body: { user_id: "u_a", tenant_id: "beta" } }),
        403,
        "tenant_mismatch"
      )
      assert.strictEqual((yield* http("POST", "/v1/sessions", { key: alpha.key, body: { user_id: "u_a", tenant_id: "alpha" } })).status, 201)
    }))

  it.effect("a read-only key cannot write or administer (403), and cannot mint itself more scopes", () =>
    Effect.gen(function*() {
      const reader = yield* tenant("gamma", "pro", ["read"])
      errorShape(yield* http("POST", "/v1/chat/messages", { key: reader.key, body: { message: "hi", user_id: "u" } }), 403, "insufficient_scope")
      errorShape(
        yield* http("POST", "/v1/admin/api-keys", { key: reader.key, body: { name: "root", scopes: ["admin"] } }),
        403,
        "insufficient_scope"
      )
      // A token exchanged for the key carries the key's scopes, no more.
      const token = yield* http("POST", "/v1/auth/token", { key: reader.key })
      assert.strictEqual(token.status, 200, token.text)
      assert.strictEqual(token.body.scope, "read")
      errorShape(
        yield* http("GET", "/v1/admin/api-keys", { key: String(token.body.access_token) }),
        403,
        "insufficient_scope"
      )
      assert.strictEqual((yield* http("GET", "/v1/auth/whoami", { key: String(token.body.access_token) })).status, 200)
    }))

  it.effect("malformed JSON and schema violations are 400 naming the position or the field", () =>
    Effect.gen(function*() {
      const alpha = yield* tenant("alpha")
      const malformed = yield* http("POST", "/v1/chat/messages", { key: alpha.key, raw: `{"message": "hi", "user_id": }` })
      errorShape(malformed, 400, "malformed_json")
      assert.isNumber((malformed.body.details as { position: unknown }).position)

      const missing = yield* http("POST", "/v1/chat/messages", { key: alpha.key, body: { message: "hi" } })
      errorShape(missing, 400, "invalid_request")
      assert.include(String(missing.body.message), "user_id")

      const badId = yield* http("POST", "/v1/chat/messages", { key: alpha.key, body: { message: "hi", user_id: "a b'; DROP TABLE users;--" } })
      errorShape(badId, 400, "invalid_request")
      assert.include(String(badId.body.message), "user_id")

      errorShape(yield* http("GET", "/v1/runs/run%20x'", { key: alpha.key }), 400, "invalid_request")
      errorShape(yield* http("GET", "/v1/no-such-route", { key: alpha.key }), 404, "route_not_found")
    }))

  it.effect("a body over the limit is 413 before it is parsed", () =>
    Effect.gen(function*() {
      const alpha = yield* tenant("alpha")
      const reply = yield* http("POST", "/v1/chat/messages", {
        key: alpha.key,
        body: { message: "x".repeat(70_000), user_id: "u" }
      })
      errorShape(reply, 413, "payload_too_large")
    }))

  it.effect("SQL and template injection strings in every string field are data, never code", () =>
    Effect.gen(function*() {
      const alpha = yield* tenant("alpha")
      const payloads = [
        "'; DROP TABLE agent_runs; --",
        "\" OR 1=1 --",
        "{{ 7 * 7 }} ${7*7} #{7*7} <%= 7*7 %>",
        "$(rm -rf /) `id`",
        "<script>alert(1)</script>",
        "\u0000\u202e null and bidi"
      ]
      for (const text of payloads) {
        const chat = yield* http("POST", "/v1/chat/messages", {
          key: alpha.key,
          body: { message: text, user_id: "u_inj", channel: "web", context: { note: text, [text]: text } }
        })
        const hasNul = text.includes("\u0000")
        assert.strictEqual(chat.status, hasNul ? 400 : 200, chat.text)
        if (!hasNul) {
          // Stored verbatim: not evaluated, not escaped away.
          const db = yield* Database
          const stored = yield* db.tenant("alpha")(db.sql<{ content: string }>`SELECT content FROM messages
            WHERE tenant_id = 'alpha' AND run_id = ${String(chat.body.run_id)}`)
          assert.strictEqual(stored[0]?.content, text)
        }
        const doc = yield* http("POST", "/v1/knowledge/documents", {
          key: alpha.key,
          body: { sourceKey: text, title: text, format: "text", content: `content ${text}`, tags: [text], metadata: { [text]: text } }
        })
        assert.strictEqual(doc.status, hasNul ? 400 : 201, doc.text)
        const search = yield* http("POST", "/v1/knowledge/search", { key: alpha.key, body: { query: text } })
        assert.strictEqual(search.status, hasNul ? 400 : 200, search.text)
        const user = yield* http("POST", "/v1/admin/users", { key: alpha.key, body: { id: "u_x", email: text, role: "viewer" } })
        assert.strictEqual(user.status, 400, user.text)
        const key = yield* http("POST", "/v1/admin/api-keys", { key: alpha.key, body: { name: text, scopes: ["read"] } })
        assert.strictEqual(key.status, hasNul ? 400 : 201, key.text)
      }
      const db = yield* Database
      const runs = yield* db.system(db.sql<{ n: string }>`SELECT count(*) AS n FROM agent_runs`)
      assert.isTrue(Number(runs[0]?.n) > 0)
    }))

  it.effect("Idempotency-Key: a retried POST gets the first response and acts once", () =>
    Effect.gen(function*() {
      const alpha = yield* tenant("alpha")
      const send = (message: string) =>
        http("POST", "/v1/chat/messages", {
          key: alpha.key,
          headers: { "idempotency-key": "retry-me-1" },
          body: { message, user_id: "u_idem" }
        })
      const first = yield* send("once please")
      const second = yield* send("once please")
      assert.strictEqual(first.status, 200, first.text)
      assert.strictEqual(second.status, 200)
      assert.strictEqual(second.text, first.text)
      assert.strictEqual(second.headers.get("idempotent-replayed"), "true")
      const db = yield* Database
      const rows = yield* db.tenant("alpha")(db.sql<{ n: string }>`SELECT count(*) AS n FROM messages WHERE content = 'once please'`)
      assert.strictEqual(Number(rows[0]?.n), 1)
      errorShape(yield* send("a different request"), 409, "idempotency_key_reused")
    }))

  it.effect("admin: keys are rotated with an overlap, audit logs redact PII", () =>
    Effect.gen(function*() {
      const delta = yield* tenant("delta")
      const created = yield* http("POST", "/v1/admin/api-keys", { key: delta.key, body: { name: "ops", scopes: ["read", "write"] } })
      assert.strictEqual(created.status, 201, created.text)
      const plain = String(created.body.api_key)
      const id = String((created.body.key as { id: string }).id)
      const rotated = yield* http("POST", `/v1/admin/api-keys/${id}/rotate`, { key: delta.key, body: { overlap_seconds: 3600 } })
      assert.strictEqual(rotated.status, 201, rotated.text)
      // Both keys work during the overlap.
      assert.strictEqual((yield* http("GET", "/v1/auth/whoami", { key: plain })).status, 200)
      assert.strictEqual((yield* http("GET", "/v1/auth/whoami", { key: String(rotated.body.api_key) })).status, 200)
      const noOverlap = yield* http("POST", `/v1/admin/api-keys/${String((rotated.body.key as { id: string }).id)}/rotate`, {
        key: delta.key,
        body: { overlap_seconds: 0 }
      })
      assert.strictEqual(noOverlap.status, 201)
      assert.strictEqual((yield* http("GET", "/v1/auth/whoami", { key: String(rotated.body.api_key) })).status, 401)

      const user = yield* http("POST", "/v1/admin/users", { key: delta.key, body: { id: "u_ann", email: "ann@example.com", role: "agent" } })
      assert.strictEqual(user.status, 201, user.text)
      assert.deepStrictEqual(user.body.scopes, ["read", "write"])
      const audit = yield* http("GET", "/v1/admin/audit-logs", { key: delta.key, headers: { "x-request-id": "req-audit-1" } })
      assert.strictEqual(audit.status, 200)
      assert.include(audit.text, "api_key.rotate")
      assert.include(audit.text, "user.create")
      assert.notInclude(audit.text, "ann@example.com")
      assert.include(audit.text, "[email]")
    }))

  it.effect("admin: workflows are listed; an invalid overlay is refused with file:line diagnostics", () =>
    Effect.gen(function*() {
      const delta = yield* tenant("delta")
      const list = yield* http("GET", "/v1/admin/workflows", { key: delta.key })
      assert.strictEqual(list.status, 200, list.text)
      assert.include(list.text, "\"customer_support\"")
      const invalid = yield* http("PUT", "/v1/admin/workflows", {
        key: delta.key,
        body: { file: "mine.yaml", source: "name: customer_support\nextends: no_such_workflow\nsteps: 7\n" }
      })
      errorShape(invalid, 400, "workflow_invalid")
      const diagnostics = (invalid.body.details as { diagnostics: ReadonlyArray<{ file: string; line: number }> }).diagnostics
      assert.isTrue(diagnostics.length > 0)
      assert.strictEqual(diagnostics[0]!.file, "mine.yaml")
      errorShape(yield* http("DELETE", "/v1/admin/workflows/customer_support", { key: delta.key }), 404, "workflow_overlay_not_found")
    }))

  it.effect("OpenAPI, Swagger UI, metrics and health are served", () =>
    Effect.gen(function*() {
      const spec = yield* http("GET", "/openapi.json")
      assert.strictEqual(spec.status, 200)
      assert.isObject(spec.body.paths)
      assert.isTrue("/v1/chat/messages" in (spec.body.paths as object))
      assert.strictEqual((yield* http("GET", "/docs")).status, 200)
      assert.strictEqual((yield* http("GET", "/healthz")).status, 200)
      const metrics = yield* http("GET", "/metrics")
      assert.strictEqual(metrics.status, 200)
      assert.include(metrics.text, "# TYPE tessera_http_requests_total counter")
      assert.match(metrics.text, /tessera_http_request_duration_ms_bucket\{le="\+Inf"\} \d+/)
    }))
})
