/**
 * Retrieval benchmark: the demo knowledge base and the 180 paraphrased questions of
 * `test/fixtures/retrieval/questions.jsonl`, per mode (full text, vectors, hybrid): recall@1,
 * recall@5, MRR and search latency; then ingestion throughput and search latency again once the
 * tenant holds ~10k chunks (synthetic store pages as distractors). Run once per form of the
 * Postgres vector store: the exact `float4[]` scan, then pgvector's HNSW index when the server
 * has the extension — the same questions and chunks side by side. Fresh database per form on
 * `TEST_DATABASE_URL`, local embedder, live clock. `npm run bench:retrieval`.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { TenantId } from "@tessera/domain/Ids"
import { DocumentInput, type SearchMode } from "@tessera/domain/Knowledge"
import { Database } from "@tessera/runtime/Database"
import * as KnowledgeEval from "@tessera/runtime/KnowledgeEval"
import * as KnowledgeStore from "@tessera/runtime/KnowledgeStore"
import * as LocalEmbedder from "@tessera/runtime/LocalEmbedder"
import * as PgVectorStore from "@tessera/runtime/PgVectorStore"
import * as TestDatabase from "@tessera/runtime/TestDatabase"
import * as DemoKnowledge from "@tessera/server/DemoKnowledge"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"

const tenantId = TenantId.make("demo")
const modes: ReadonlyArray<SearchMode> = ["full_text", "vector", "hybrid"]

const percentile = (values: ReadonlyArray<number>, p: number) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0
}

const words = ["order", "parcel", "invoice", "voucher", "account", "return", "warranty", "courier", "basket", "checkout",
  "refund", "label", "address", "payment", "delivery", "exchange", "receipt", "discount", "battery", "charger", "jacket",
  "lamp", "kettle", "cable", "adapter", "headphones", "blanket", "mug", "backpack", "sneakers"]

/** A synthetic store page of five sections (five chunks), deterministic from its number. */
const syntheticPage = (n: number) => {
  const pick = (i: number) => words[(n * 7 + i * 13) % words.length]!
  const sections = Array.from({ length: 5 }, (_, s) =>
    `## ${pick(s)} ${pick(s + 1)} notes ${n}.${s}\n\n` +
    Array.from({ length: 4 }, (_, k) =>
      `The ${pick(s + k)} for catalogue item ${n}-${s}-${k} is listed with the ${pick(s + k + 2)} and the ${pick(s + k + 5)}; ` +
      `it ships in a ${pick(s + k + 3)} box and its ${pick(s + k + 7)} is checked twice.`).join(" "))
  return new DocumentInput({
    sourceKey: `synthetic-${n}`,
    title: `Catalogue page ${n}`,
    format: "markdown",
    content: `# Catalogue page ${n}\n\n${sections.join("\n\n")}`,
    tags: ["synthetic"],
    metadata: {}
  })
}

const program = (form: string) => Effect.gen(function*() {
  const db = yield* Database
  const store = yield* KnowledgeStore.KnowledgeStore
  yield* db.tenant(tenantId)(db.sql`INSERT INTO tenants (tenant_id, name, plan, limits) VALUES (${tenantId}, 'Demo', 'pro', '{}')`)
  const questions = yield* KnowledgeEval.parseJsonl(
    Fs.readFileSync(Path.resolve(import.meta.dirname, "../fixtures/retrieval/questions.jsonl"), "utf8")
  )
  const chunkCount = db.tenant(tenantId)(db.sql<{ n: string }>`SELECT count(*) AS n FROM kb_chunks`).pipe(
    Effect.map((rows) => Number(rows[0]?.n ?? 0))
  )

  console.log(`Tessera retrieval benchmark — vector store: ${form}`)
  console.log(`  node ${process.version}, ${Os.cpus().length} CPUs, local embedder (local/hash-384)`)

  let started = performance.now()
  const demo = yield* DemoKnowledge.documents
  yield* Effect.forEach(demo, (doc) => store.add(tenantId, doc), { concurrency: 4 })
  const demoChunks = yield* chunkCount
  const demoSeconds = (performance.now() - started) / 1000
  console.log(`  demo KB: ${demo.length} documents, ${demoChunks} chunks, ingested at ${(demoChunks / demoSeconds).toFixed(0)} chunks/s`)
  console.log(`  ${questions.length} questions (paraphrased; expected = FAQ entry or policy page ids)`)
  console.log("")
  const table = (label: string, reports: ReadonlyArray<KnowledgeEval.Report>) => {
    console.log(`  ${label}`)
    console.log(`  ${"mode".padEnd(10)}${"recall@1".padStart(10)}${"recall@5".padStart(10)}${"MRR".padStart(8)}${"p50 ms".padStart(9)}${"p95 ms".padStart(9)}`)
    for (const r of reports) {
      console.log(
        `  ${r.mode.padEnd(10)}${r.recallAt1.toFixed(3).padStart(10)}${r.recallAt5.toFixed(3).padStart(10)}${r.mrr.toFixed(3).padStart(8)}` +
          `${percentile(r.latenciesMs, 0.5).toFixed(1).padStart(9)}${percentile(r.latenciesMs, 0.95).toFixed(1).padStart(9)}`
      )
    }
    console.log("")
  }
  table(`demo KB (${demoChunks} chunks)`, yield* Effect.forEach(modes, (mode) => KnowledgeEval.evaluate(tenantId, questions, mode)))

  started = performance.now()
  const target = Number(process.env.BENCH_CHUNKS ?? 10_000)
  const pages = Array.from({ length: Math.ceil((target - demoChunks) / 5) }, (_, n) => syntheticPage(n))
  yield* Effect.forEach(pages, (doc) => store.add(tenantId, doc), { concurrency: 4 })
  const total = yield* chunkCount
  const seconds = (performance.now() - started) / 1000
  console.log(`  ingestion: ${total - demoChunks} synthetic chunks in ${seconds.toFixed(1)} s = ${((total - demoChunks) / seconds).toFixed(0)} chunks/s (chunk + embed + write, 4 concurrent documents)`)
  console.log("")
  table(`demo KB + synthetic distractors (${total} chunks)`, yield* Effect.forEach(modes, (mode) => KnowledgeEval.evaluate(tenantId, questions, mode)))
})

const storeWith = (options: PgVectorStore.Options) =>
  KnowledgeStore.layer.pipe(
    Layer.provide(PgVectorStore.layerWith(options)),
    Layer.provide(LocalEmbedder.layer),
    Layer.provideMerge(TestDatabase.layer),
    Layer.provideMerge(NodeContext.layer)
  )

const main = Effect.gen(function*() {
  yield* program("Postgres, exact float4[] cosine scan").pipe(Effect.provide(storeWith({ pgvector: "off" })))
  if (yield* TestDatabase.extensionAvailable("vector")) {
    console.log("")
    yield* program("Postgres, pgvector HNSW (cosine, iterative scan)").pipe(Effect.provide(storeWith({ pgvector: "auto" })))
  } else {
    console.log("  (pgvector is not installed on this server: the HNSW form is not measured)")
  }
})

NodeRuntime.runMain(main.pipe(Logger.withMinimumLogLevel(LogLevel.Warning)))
