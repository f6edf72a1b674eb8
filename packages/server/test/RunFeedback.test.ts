/**
 * `POST /v1/runs/:id/feedback` on a whole node: stored once per run (a second rating replaces the
 * first), another tenant's run is 404, and the router learns from it on a node that did not make
 * the run's decisions (a fresh router instance on the same database).
 */
import { assert, layer } from "@effect/vitest"
import { Database } from "@tessera/runtime/Database"
import * as Router from "@tessera/runtime/Router"
import * as RouterBandit from "@tessera/runtime/RouterBandit"
import * as RouterClassifier from "@tessera/runtime/RouterClassifier"
import * as RouterFeatures from "@tessera/runtime/RouterFeatures"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as EdgeNode from "./EdgeNode.js"

const { http, tenant } = EdgeNode

const options: Router.Options = { ...Router.defaults, flushInterval: Duration.hours(1) }

const StoredBandit = Schema.Struct({ bandit: RouterBandit.State })

/** The stored `b` of an arm. */
const storedB = (tenantId: string, arm: number) =>
  Effect.gen(function*() {
    const db = yield* Database
    const rows = yield* db.tenant(tenantId)(db.sql<{ readonly state: unknown }>`SELECT state FROM router_state WHERE name = 'policy'`)
    return Schema.decodeUnknownSync(StoredBandit)(rows[0]?.state).bandit.arms[arm]!.b
  })

layer(EdgeNode.layer({ CHAT_DEADLINE: "20 seconds" }), { timeout: 120_000, excludeTestServices: true })("Run feedback", (it) => {
  it.scoped("a rating via HTTP reaches the bandit from a fresh router instance; a second replaces it; another tenant's run is 404", () =>
    Effect.gen(function*() {
      const gamma = yield* tenant("gamma")
      const delta = yield* tenant("delta")
      const chat = yield* http("POST", "/v1/chat/messages", { key: gamma.key, body: { message: "Where is my parcel?", user_id: "u_g" } })
      assert.strictEqual(chat.status, 200, chat.text)
      const runId = String(chat.body.run_id)

      // The node that ran the step decided and flushed; the rating then goes to another one.
      const decider = yield* Router.make(options)
      const decided = yield* decider.decide({ tenantId: gamma.tenantId, text: "Where is my parcel?", strict: false, plan: "pro" })
      const arm = RouterClassifier.tiers.indexOf(decided.decision.tier)
      yield* decider.record({ tenantId: gamma.tenantId, key: `${runId}:answer`, decided, tier: decided.decision.tier, passed: true, answered: true, repairs: 0, costUsd: 0 })
      yield* decider.flush
      const before = yield* storedB(gamma.tenantId, arm)

      const rated = yield* http("POST", `/v1/runs/${runId}/feedback`, { key: gamma.key, body: { rating: -1, comment: "wrong parcel" } })
      assert.strictEqual(rated.status, 200, rated.text)
      assert.deepStrictEqual([rated.body.runId, rated.body.rating, rated.body.comment], [runId, -1, "wrong parcel"])

      const other = yield* Router.make(options)
      yield* other.state(gamma.tenantId)
      yield* other.flush
      // Quality 1 → 0: the decision's reward falls by 1, so b moves by −x.
      const after = yield* storedB(gamma.tenantId, arm)
      after.forEach((v, i) => assert.approximately(v, before[i]! - decided.features[i]!, 1e-9))
      const scratch = new Float64Array(RouterFeatures.dimension)
      const fresh = yield* (yield* Router.make(options)).state(gamma.tenantId)
      const stale = yield* decider.state(gamma.tenantId)
      assert.isBelow(RouterBandit.score(fresh.bandit, arm, decided.features, scratch).mean, RouterBandit.score(stale.bandit, arm, decided.features, scratch).mean)

      // A second rating replaces the first: the reward goes back up, and once only.
      const again = yield* http("POST", `/v1/runs/${runId}/feedback`, { key: gamma.key, body: { rating: 1 } })
      assert.strictEqual(again.status, 200, again.text)
      assert.strictEqual(again.body.comment, null)
      yield* other.flush
      yield* other.flush
      const restored = yield* storedB(gamma.tenantId, arm)
      restored.forEach((v, i) => assert.approximately(v, before[i]!, 1e-9))
      const db = yield* Database
      const rows = yield* db.tenant(gamma.tenantId)(db.sql<{ readonly rating: number; readonly pending: boolean }>`SELECT rating, pending FROM run_feedback`)
      assert.deepStrictEqual(rows.map((r) => [r.rating, r.pending]), [[1, false]])

      // Another tenant's run is 404, as an unknown one; nothing is stored.
      const foreign = yield* http("POST", `/v1/runs/${runId}/feedback`, { key: delta.key, body: { rating: -1 } })
      assert.strictEqual(foreign.status, 404, foreign.text)
      assert.strictEqual(foreign.body.code, "run_not_found")
      assert.strictEqual((yield* http("POST", "/v1/runs/run_missing/feedback", { key: gamma.key, body: { rating: 1 } })).status, 404)
      assert.strictEqual((yield* http("POST", `/v1/runs/${runId}/feedback`, { key: gamma.key, body: { rating: 2 } })).status, 400)
      const stored = yield* db.tenant(gamma.tenantId)(db.sql<{ readonly rating: number }>`SELECT rating FROM run_feedback`)
      assert.deepStrictEqual(stored.map((r) => r.rating), [1])
    }))
})
