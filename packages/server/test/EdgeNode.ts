/**
 * A whole node for edge tests: a fresh migrated database, one cluster runner hosting every entity
 * on the live clock, the shipped workflows on the local model, the knowledge store, and the HTTP
 * API on a free port; events through the outbox relay to the in-process bus (NATS when `NATS_URL`
 * is in `env`). Tenants are provisioned by the tests with `tenant`.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as HttpServer from "@effect/platform/HttpServer"
import type { Scope } from "@tessera/domain/ApiKey"
import { TenantId } from "@tessera/domain/Ids"
import type { PlanName } from "@tessera/domain/Plan"
import { TenantEntity } from "@tessera/domain/TenantEntity"
import * as ApiKeys from "@tessera/runtime/ApiKeys"
import * as ClusterRunner from "@tessera/runtime/ClusterRunner"
import * as Entities from "@tessera/runtime/Entities"
import * as KnowledgeStore from "@tessera/runtime/KnowledgeStore"
import * as LlmGatewayLive from "@tessera/runtime/LlmGatewayLive"
import * as LocalEmbedder from "@tessera/runtime/LocalEmbedder"
import * as MemoryEventBus from "@tessera/runtime/MemoryEventBus"
import * as NatsEventBus from "@tessera/runtime/NatsEventBus"
import * as OutboxRelay from "@tessera/runtime/OutboxRelay"
import * as PgVectorStore from "@tessera/runtime/PgVectorStore"
import * as TestDatabase from "@tessera/runtime/TestDatabase"
import * as ToolRegistry from "@tessera/runtime/ToolRegistry"
import * as WorkflowRegistry from "@tessera/runtime/WorkflowRegistry"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { createServer } from "node:http"
import * as Api from "../src/Api.js"

export class Edge extends Context.Tag("test/Edge")<Edge, {
  readonly baseUrl: string
  readonly port: number
}>() {}

const workflows = Layer.mergeAll(
  ToolRegistry.layer,
  LlmGatewayLive.layerLocal,
  WorkflowRegistry.plans.pipe(Layer.provideMerge(WorkflowRegistry.layer({ dir: WorkflowRegistry.defaultDir })), Layer.provide(NodeContext.layer))
)

/** The node, with `env` as its configuration (e.g. REDIS_URL, CHAT_DEADLINE, HTTP_MAX_BODY_BYTES). */
export const layer = (env: Record<string, string> = {}) => {
  const server = NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })
  const edge = Layer.effect(
    Edge,
    Effect.map(HttpServer.HttpServer, ({ address }) => {
      const port = address._tag === "TcpAddress" ? address.port : 0
      return { baseUrl: `http://127.0.0.1:${port}`, port }
    })
  )
  const bus = env["NATS_URL"] === undefined ? MemoryEventBus.layer : NatsEventBus.layerConfig
  return Layer.mergeAll(Entities.layer, OutboxRelay.layer({ interval: "20 millis" }), Api.serveOn(server), edge.pipe(Layer.provide(server))).pipe(
    Layer.provideMerge(workflows),
    Layer.provideMerge(bus),
    Layer.provideMerge(KnowledgeStore.layer.pipe(Layer.provide(PgVectorStore.layer), Layer.provide(LocalEmbedder.layer))),
    Layer.provideMerge(ClusterRunner.layerSingle({ shardLockRefreshInterval: "1 second" })),
    Layer.provideMerge(TestDatabase.layer),
    Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))),
    Layer.orDie
  )
}

/** A provisioned tenant and one API key of it with `scopes`. */
export const tenant = (name: string, plan: PlanName = "pro", scopes: ReadonlyArray<Scope> = ["read", "write", "admin"]) =>
  Effect.gen(function*() {
    const tenantId = TenantId.make(name)
    yield* (yield* TenantEntity.client)(tenantId).Provision({ name, plan }).pipe(
      Effect.catchTag("TenantAlreadyExists", () => Effect.void)
    )
    const key = yield* ApiKeys.create(tenantId, `${name}-key`, scopes)
    return { tenantId, key: Redacted.value(key.plainKey), keyId: key.id }
  })

export interface Reply {
  readonly status: number
  readonly headers: Headers
  /** The JSON object of the body ({} when it is not one). */
  readonly body: Record<string, unknown>
  readonly text: string
}

/** One HTTP request to the node; the body is parsed when it is JSON. */
export const http = (
  method: string,
  path: string,
  options: { readonly key?: string; readonly body?: unknown; readonly raw?: string; readonly headers?: Record<string, string> } = {}
) =>
  Effect.gen(function*() {
    const { baseUrl } = yield* Edge
    const headers: Record<string, string> = { ...options.headers }
    if (options.key !== undefined) headers["authorization"] = `Bearer ${options.key}`
    let body: string | undefined
    if (options.raw !== undefined) body = options.raw
    else if (options.body !== undefined) body = JSON.stringify(options.body)
    if (body !== undefined) headers["content-type"] ??= "application/json"
    return yield* Effect.promise(async (): Promise<Reply> => {
      const response = await fetch(`${baseUrl}${path}`, { method, headers, ...(body === undefined ? {} : { body }) })
      const text = await response.text()
      let parsed: Record<string, unknown> = {}
      try {
        const json: unknown = text === "" ? null : JSON.parse(text)
        if (typeof json === "object" && json !== null && !Array.isArray(json)) parsed = Object.fromEntries(Object.entries(json))
      } catch {
        parsed = {}
      }
      return { status: response.status, headers: response.headers, body: parsed, text }
    })
  })
