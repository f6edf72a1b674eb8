import { assert, describe, it } from "@effect/vitest"
import { GenerateRequest, LlmMessage } from "@tessera/domain/Llm"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import { Database } from "../src/Database.js"
import { LlmGateway } from "../src/LlmGateway.js"
import * as LlmGatewayLive from "../src/LlmGatewayLive.js"
import * as Router from "../src/Router.js"
import * as TestDatabase from "../src/TestDatabase.js"
import { chatCompletion, serve } from "./LlmServers.js"

const secret = "sk-config-secret-77"

/** The gateway as a node builds it, from these variables, on a fresh migrated database. */
const gatewayFrom = (env: Record<string, string>) =>
  LlmGatewayLive.layer.pipe(Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))))

const ask = (tenantId: string, tier: "SLM_A" | "LLM" | "auto") =>
  new GenerateRequest({ tenantId, tier, messages: [new LlmMessage({ role: "user", content: "hello there" })] })

describe("LlmGatewayLive.layer", () => {
  it.layer(TestDatabase.layer.pipe(Layer.orDie), { timeout: 60_000 })((it) => {
    it.scoped("tiers come from LLM_* variables, a tenant's own routes from llm_tenant_routes, and auto goes through the router", () =>
      Effect.gen(function*() {
        const { url, requests } = yield* serve(() => chatCompletion("remote answer", { prompt_tokens: 10, completion_tokens: 5 }))
        const db = yield* Database
        yield* db.tenant("vip")(db.sql`INSERT INTO llm_tenant_routes (tenant_id, tier, routes) VALUES ('vip', 'SLM_A', 'openai:my-vllm-model@0.0001/0.0002')`)
        const context = yield* Layer.build(gatewayFrom({
          LLM_LLM: "openai:gpt-4o-mini",
          OPENAI_BASE_URL: `${url}/v1`,
          OPENAI_API_KEY: secret,
          LLM_CACHE_TTL: "0 seconds"
        }))
        const llm = yield* Effect.provide(LlmGateway, context)

        const local = yield* llm.generate(ask("plain", "SLM_A"))
        assert.strictEqual(local.provider, "local")
        const remote = yield* llm.generate(ask("plain", "LLM"))
        assert.deepStrictEqual([remote.provider, remote.model, remote.text], ["openai", "gpt-4o-mini", "remote answer"])
        assert.strictEqual(requests[0]!.headers.authorization, `Bearer ${secret}`)

        const vip = yield* llm.generate(ask("vip", "SLM_A"))
        assert.deepStrictEqual([vip.provider, vip.model], ["openai", "my-vllm-model"])
        assert.approximately(vip.costUsd, 0.01 * 0.0001 + 0.005 * 0.0002, 1e-12)

        const auto = yield* llm.generate(ask("plain", "auto"))
        assert.include(["local", "openai"], auto.provider)
        const router = yield* Effect.provide(Router.Router, context)
        assert.strictEqual((yield* router.state("plain")).decisions, 1)
        yield* router.flush
        const saved = yield* db.tenant("plain")(db.sql<{ name: string }>`SELECT name FROM router_state`)
        assert.deepStrictEqual(saved.map((r) => r.name), ["policy"])
      }))

    it.effect("a bad route names the variable and what is wrong", () =>
      Effect.gen(function*() {
        const exit = yield* Effect.exit(Effect.scoped(Layer.build(gatewayFrom({ LLM_SLM_B: "openai:some-new-model" }))))
        assert.isTrue(Exit.isFailure(exit))
        const text = String(Exit.isFailure(exit) ? exit.cause : "")
        assert.include(text, "LLM_SLM_B")
        assert.include(text, "no built-in price for some-new-model")
      }))
  })
})
