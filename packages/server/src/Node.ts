/**
 * The processes `tessera` starts. Both migrate first, host every entity and the run recovery
 * singleton, relay the outbox to the event bus, and serve the HTTP API (see Api) on `PORT`.
 *
 * - `dev`: one node on the embedded defaults. Postgres is `DATABASE_URL` when set, otherwise
 *   the embedded server in `.tessera/pg`; events go to NATS when `NATS_URL` is set, otherwise to
 *   the in-process bus. Provisions the demo tenant before it opens HTTP, so /readyz implies
 *   `.tessera/demo.json` (with a generated operator token unless `TESSERA_OPERATOR_TOKEN` is set).
 * - `runner`: a cluster node for production: `DATABASE_URL` is required, `NATS_URL` selects
 *   JetStream, `RUNNER_HOST`/`RUNNER_PORT` address it in the cluster.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as ClusterRunner from "@tessera/runtime/ClusterRunner"
import * as Database from "@tessera/runtime/Database"
import * as EmbeddedPostgres from "@tessera/runtime/EmbeddedPostgres"
import * as Entities from "@tessera/runtime/Entities"
import * as MemoryEventBus from "@tessera/runtime/MemoryEventBus"
import * as Migrations from "@tessera/runtime/Migrations"
import * as NatsEventBus from "@tessera/runtime/NatsEventBus"
import * as KnowledgeStore from "@tessera/runtime/KnowledgeStore"
import * as LlmGatewayLive from "@tessera/runtime/LlmGatewayLive"
import * as LocalEmbedder from "@tessera/runtime/LocalEmbedder"
import * as OpenAiEmbedder from "@tessera/runtime/OpenAiEmbedder"
import * as OutboxRelay from "@tessera/runtime/OutboxRelay"
import * as PgVectorStore from "@tessera/runtime/PgVectorStore"
import * as QdrantVectorStore from "@tessera/runtime/QdrantVectorStore"
import * as ToolRegistry from "@tessera/runtime/ToolRegistry"
import * as WorkflowRegistry from "@tessera/runtime/WorkflowRegistry"
import * as IngestionWorker from "@tessera/workers/IngestionWorker"
import * as FileSystem from "@effect/platform/FileSystem"
import type { TenantId } from "@tessera/domain/Ids"
import type { SearchMode } from "@tessera/domain/Knowledge"
import * as KnowledgeEval from "@tessera/runtime/KnowledgeEval"
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type { ConfigError } from "effect/ConfigError"
import * as Demo from "./Demo.js"
import * as DemoKnowledge from "./DemoKnowledge.js"
import * as Api from "./Api.js"
import * as Operator from "./Operator.js"
import * as Pii from "./Pii.js"

const port = Config.port("PORT").pipe(Config.withDefault(8080))

/** The HTTP API (with /healthz, /readyz, /metrics, /openapi.json, /docs) on `PORT`, with `operatorToken`'s operator token. */
const httpServer = <R>(operatorToken: Layer.Layer<Operator.OperatorToken, ConfigError, R>) =>
  Layer.unwrapEffect(Effect.map(port, (port) => Api.serve({ port, operatorToken })))

/** NATS when `NATS_URL` is set, the in-process bus otherwise. */
const eventBus = Layer.unwrapEffect(
  Effect.map(Config.option(Config.string("NATS_URL")), (url) =>
    Option.isSome(url) ? NatsEventBus.layerConfig : MemoryEventBus.layer)
)

const migrated = Layer.effectDiscard(Migrations.run)

/** The OpenAI-compatible embeddings endpoint when `EMBEDDINGS_BASE_URL` is set, the local embedder otherwise. */
const embedder = Layer.unwrapEffect(
  Effect.map(Config.option(Config.string("EMBEDDINGS_BASE_URL")), (url) =>
    Option.isSome(url) ? OpenAiEmbedder.layerConfig : LocalEmbedder.layer)
)

/** Qdrant when `QDRANT_URL` is set; Postgres otherwise (pgvector's HNSW index when the server has it). */
const vectorStore = Layer.unwrapEffect(
  Effect.map(Config.option(Config.string("QDRANT_URL")), (url) =>
    Option.isSome(url) ? QdrantVectorStore.layerConfig : PgVectorStore.layerConfig)
)

const knowledge = KnowledgeStore.layer.pipe(Layer.provide(vectorStore), Layer.provide(embedder))

/**
 * The tools runs call, the plans they execute (the workflow registry, `WORKFLOWS_DIR`, compiled)
 * and the models their llm and route steps use: the gateway with the tiers of `LLM_SLM_A`,
 * `LLM_SLM_B`, `LLM_LLM` (the built-in local model on every tier by default) and the router.
 */
const workflows = Layer.mergeAll(
  ToolRegistry.layer,
  LlmGatewayLive.layer,
  WorkflowRegistry.plans.pipe(Layer.provideMerge(WorkflowRegistry.layerConfig), Layer.provide(NodeContext.layer))
)

/** What every node runs on top of its database and sharding; HTTP opens once `before` has given the operator token. */
const node = <R>(before: Layer.Layer<Operator.OperatorToken, ConfigError, R>) =>
  Layer.mergeAll(
    Entities.layer,
    OutboxRelay.layer(),
    IngestionWorker.layer(),
    httpServer(before)
  ).pipe(
    Layer.provide(workflows),
    Layer.provideMerge(knowledge),
    Layer.provide(eventBus),
    Layer.provide(migrated),
    Layer.provide(Pii.layerLogger)
  )

const database = Layer.unwrapEffect(
  Effect.map(Config.option(Config.string("DATABASE_URL")), (url) =>
    Option.isSome(url) ? Database.layerConfig : EmbeddedPostgres.layerPgClient)
)

/** The demo tenant and its knowledge; the operator token is `TESSERA_OPERATOR_TOKEN`, else the demo's generated one. */
const demo: Layer.Layer<Operator.OperatorToken, never, Demo.Requirements | KnowledgeStore.KnowledgeStore> = Layer.effect(
  Operator.OperatorToken,
  Effect.gen(function*() {
    const configured = yield* Operator.tokenConfig
    const file = yield* Demo.provision({ dir: ".tessera", baseUrl: `http://localhost:${yield* port}`, operatorToken: configured })
    yield* DemoKnowledge.load(Demo.tenantId)
    return Option.orElse(configured, () => Option.map(Option.fromNullable(file.operatorToken), Redacted.make))
  }).pipe(Effect.orDie)
)

export const dev = node(demo).pipe(
  Layer.provide(ClusterRunner.layerSingle()),
  Layer.provideMerge(Database.Database.Default),
  Layer.provideMerge(database),
  Layer.provide(NodeContext.layer)
)

export const runner = node(Operator.layerConfig).pipe(
  Layer.provide(ClusterRunner.layerSocketConfig),
  Layer.provideMerge(Database.Database.Default),
  Layer.provideMerge(Database.layerConfig)
)

export const migrate = Migrations.run.pipe(
  Effect.provide(Database.layerConfig)
)

/** `tessera knowledge eval <questions.jsonl> --tenant <id> [--mode hybrid|full_text|vector]`. */
export const knowledgeEval = (file: string, tenantId: TenantId, modes: ReadonlyArray<SearchMode>) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const questions = yield* Effect.flatMap(fs.readFileString(file), KnowledgeEval.parseJsonl)
    for (const mode of modes) {
      yield* Console.log(KnowledgeEval.format(yield* KnowledgeEval.evaluate(tenantId, questions, mode)))
    }
  }).pipe(
    Effect.provide(knowledge),
    Effect.provide(Database.Database.Default),
    Effect.provide(database),
    Effect.provide(NodeContext.layer)
  )
