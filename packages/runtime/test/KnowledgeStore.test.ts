import { assert, describe, it } from "@effect/vitest"
import { TenantId } from "@tessera/domain/Ids"
import { DocumentInput, SearchQuery } from "@tessera/domain/Knowledge"
import type { SearchMode } from "@tessera/domain/Knowledge"
import { QdrantClient } from "@qdrant/js-client-rest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { createHash, randomBytes } from "node:crypto"
import { Database } from "../src/Database.js"
import { Embedder } from "../src/Embedder.js"
import * as KnowledgeStore from "../src/KnowledgeStore.js"
import * as PgVectorStore from "../src/PgVectorStore.js"
import * as QdrantVectorStore from "../src/QdrantVectorStore.js"
import * as TestDatabase from "../src/TestDatabase.js"
import type { VectorStore } from "../src/VectorStore.js"

/**
 * A small deterministic embedder (hashed words and character trigrams, L2-normalised): the
 * embedder is not under test here, the store is.
 */
const hashedEmbedder = (dimension: number): Embedder["Type"] => ({
  model: `test/hashed-${dimension}`,
  dimension,
  embed: (texts) =>
    Effect.sync(() =>
      texts.map((text) => {
        const v = new Float32Array(dimension)
        const add = (feature: string, weight: number) => {
          const h = createHash("sha1").update(feature).digest()
          v[h.readUInt32LE(0) % dimension]! += (h[4]! & 1 ? 1 : -1) * weight
        }
        for (const word of text.toLowerCase().match(/[a-z0-9]+/g) ?? []) {
          add(`w:${word}`, 1)
          const padded = ` ${word} `
          for (let i = 0; i + 3 <= padded.length; i++) add(`t:${padded.slice(i, i + 3)}`, 0.5)
        }
        const norm = Math.hypot(...v) || 1
        return v.map((x) => x / norm)
      })
    )
})

const A = TenantId.make("tenant_a")
const B = TenantId.make("tenant_b")
const C = TenantId.make("tenant_c")

const doc = (sourceKey: string, content: string, extra: Partial<Pick<DocumentInput, "tags" | "metadata" | "title">> = {}) =>
  DocumentInput.make({ sourceKey, title: extra.title ?? sourceKey, format: "markdown", content, tags: extra.tags ?? [], metadata: extra.metadata ?? {} })

const query = (q: string, mode: SearchMode = "hybrid", extra: Partial<Pick<SearchQuery, "tags" | "metadata" | "topK">> = {}) =>
  SearchQuery.make({ query: q, mode, topK: extra.topK ?? 5, tags: extra.tags ?? [], metadata: extra.metadata ?? {} })

const refunds = `# Returns

## Refund timing

Refunds are credited to the original card within five business days after the parcel reaches our warehouse.

## Exchanges

You can swap a pair for another size once, free of charge.`

const shipping = `# Delivery

International shipping is charged at a flat rate of 25 euros per order. Orders over 200 euros ship free.`

const secretB = `# Internal

The zeppelin discount code for tenant B staff is ZEPPELIN42.`

const embedderLayer = Layer.succeed(Embedder, hashedEmbedder(256))

/** A VectorStore adapter under test, and how to read back what it stored for a document. */
interface Adapter {
  readonly name: string
  /** Why the suite is skipped on this machine; undefined when it runs. */
  readonly skip: string | undefined
  readonly layer: Layer.Layer<VectorStore, unknown, Database | Embedder>
  /** The document's stored vectors, by chunk position. */
  readonly vectors: (tenantId: TenantId, documentId: string) => Effect.Effect<ReadonlyArray<ReadonlyArray<number>>, unknown, Database>
}

const pgVectors = (column: "embedding" | "vec::float4[]") => (tenantId: TenantId, documentId: string) =>
  Effect.flatMap(Database, (db) =>
    db.tenant(tenantId)(db.sql<{ v: ReadonlyArray<number> }>`
      SELECT ${db.sql.literal(column)} AS v FROM kb_chunks
      WHERE tenant_id = ${tenantId} AND document_id = ${documentId} AND ${db.sql.literal(column)} IS NOT NULL
      ORDER BY position`)).pipe(Effect.map((rows) => rows.map((r) => r.v)))

const qdrantUrl = process.env["QDRANT_URL"]
const qdrantPrefix = `tessera_test_${randomBytes(4).toString("hex")}`

const adapters: ReadonlyArray<Adapter> = [
  {
    name: "Postgres, exact float4[] scan",
    skip: undefined,
    layer: PgVectorStore.layerWith({ pgvector: "off" }),
    vectors: pgVectors("embedding")
  },
  {
    name: "Postgres, pgvector HNSW",
    skip: (await Effect.runPromise(TestDatabase.extensionAvailable("vector")))
      ? undefined
      : "pgvector is not installed on the TEST_DATABASE_URL server",
    layer: PgVectorStore.layer,
    vectors: pgVectors("vec::float4[]")
  },
  {
    name: "Qdrant",
    skip: qdrantUrl === undefined ? "QDRANT_URL is not set" : undefined,
    layer: QdrantVectorStore.layer({ url: qdrantUrl ?? "", collectionPrefix: qdrantPrefix }),
    vectors: (tenantId, documentId) =>
      Effect.promise(async () => {
        const client = new QdrantClient({ url: qdrantUrl ?? "", checkCompatibility: false })
        const { points } = await client.scroll(`${qdrantPrefix}_256`, {
          filter: QdrantVectorStore.tenantFilter(tenantId, { key: "document_id", match: { value: documentId } }),
          with_vector: true,
          with_payload: true,
          limit: 1000
        })
        return points
          .sort((a, b) => Number(a.payload?.["position"]) - Number(b.payload?.["position"]))
          .map((p) => Array.from(p.vector as ReadonlyArray<number>))
      })
  }
]

for (const adapter of adapters) {
  const storeLayer = KnowledgeStore.layer.pipe(
    Layer.provideMerge(adapter.layer),
    Layer.provideMerge(embedderLayer),
    Layer.orDie
  )
  if (adapter.skip !== undefined) {
    describe(`KnowledgeStore on ${adapter.name}`, () => {
      it.skip(`skipped: ${adapter.skip}`, () => {})
    })
    continue
  }
  it.layer(storeLayer.pipe(Layer.provideMerge(TestDatabase.layer)), { timeout: 120_000 })(`KnowledgeStore on ${adapter.name}`, (it) => {
    it.effect("tenants never see each other's documents or chunks", () =>
      Effect.gen(function*() {
        const store = yield* KnowledgeStore.KnowledgeStore
        const db = yield* Database
        const a = yield* store.add(A, doc("faq/returns", refunds, { tags: ["returns"] }))
        const b = yield* store.add(B, doc("internal/zeppelin", secretB))
        assert.isTrue(a.created)
        assert.isTrue(b.created)

        for (const mode of ["hybrid", "full_text", "vector"] as const) {
          const fromA = yield* store.search(A, query("zeppelin discount code", mode))
          assert.isTrue(fromA.every((hit) => hit.documentId !== b.document.id), `mode ${mode}`)
          const fromB = yield* store.search(B, query("zeppelin discount code", mode))
          assert.strictEqual(fromB[0]?.documentId, b.document.id, `mode ${mode}`)
        }
        const missing = yield* store.get(A, b.document.id).pipe(Effect.flip)
        assert.strictEqual(missing._tag, "DocumentNotFound")
        const listed = yield* store.list(A, { limit: 100, offset: 0 })
        assert.isTrue(listed.every((d) => d.tenantId === A))
        assert.isFalse(listed.some((d) => d.id === b.document.id))

        // RLS: a hand-written query in A's transaction that asks for B's rows gets none.
        const byHand = yield* db.tenant(A)(
          db.sql<{ n: number }>`SELECT count(*)::int AS n FROM kb_chunks WHERE tenant_id = ${B}`
        )
        assert.strictEqual(byHand[0]?.n, 0)
        const everything = yield* db.tenant(A)(db.sql<{ tenant_id: string }>`SELECT DISTINCT tenant_id FROM kb_chunks`)
        assert.deepStrictEqual(everything.map((r) => r.tenant_id), ["tenant_a"])
        const removeB = yield* store.remove(A, b.document.id).pipe(Effect.flip)
        assert.strictEqual(removeB._tag, "DocumentNotFound")
      }))

    it.effect("the same content twice is one document; a new version of a source replaces its chunks", () =>
      Effect.gen(function*() {
        const store = yield* KnowledgeStore.KnowledgeStore
        const db = yield* Database
        const first = yield* store.add(A, doc("faq/shipping", shipping))
        // the same plain text, differently spaced, under another key
        const again = yield* store.add(A, doc("faq/shipping-copy", shipping.replace(/ /g, "  ")))
        assert.isTrue(first.created)
        assert.isFalse(again.created)
        assert.strictEqual(again.document.id, first.document.id)

        const v2 = yield* store.add(A, doc("faq/shipping", `${shipping}\n\nExpress delivery takes two days.`))
        assert.isFalse(v2.created)
        assert.strictEqual(v2.document.id, first.document.id)
        assert.notStrictEqual(v2.document.contentHash, first.document.contentHash)
        const texts = yield* db.tenant(A)(db.sql<{ text: string }>`
          SELECT text FROM kb_chunks WHERE tenant_id = ${A} AND document_id = ${first.document.id} ORDER BY position`)
        assert.isTrue(texts.some((r) => r.text.includes("Express delivery")))
        assert.strictEqual(texts.length, v2.document.chunkCount)
      }))

    it.effect("re-indexing is idempotent: same chunks, identical vectors", () =>
      Effect.gen(function*() {
        const store = yield* KnowledgeStore.KnowledgeStore
        const db = yield* Database
        const { document } = yield* store.add(A, doc("faq/returns-reindex", `${refunds}\n\nReindex me.`))
        const texts = db.tenant(A)(db.sql<{ text: string }>`
          SELECT text FROM kb_chunks WHERE tenant_id = ${A} AND document_id = ${document.id} ORDER BY position`)
        const before = yield* texts
        const vectorsBefore = yield* adapter.vectors(A, document.id)
        const reindexed = yield* store.reindex(A, document.id)
        assert.isAbove(before.length, 0)
        assert.strictEqual(reindexed.chunkCount, before.length)
        assert.deepStrictEqual((yield* texts).map((r) => r.text), before.map((r) => r.text))
        assert.strictEqual(vectorsBefore.length, before.length)
        assert.deepStrictEqual(yield* adapter.vectors(A, document.id), vectorsBefore)
        // and the stored vectors are the embedder's: headings, then text
        const [first] = yield* db.tenant(A)(db.sql<{ heading_path: ReadonlyArray<string>; text: string }>`
          SELECT heading_path, text FROM kb_chunks WHERE tenant_id = ${A} AND document_id = ${document.id} AND position = 0`)
        const [fresh] = yield* Effect.flatMap(Embedder, (e) => e.embed([[...first!.heading_path, first!.text].join("\n")]))
        assert.strictEqual(vectorsBefore[0]?.length, fresh?.length)
        vectorsBefore[0]?.forEach((x, i) => assert.closeTo(x, fresh![i]!, 1e-6))
      }))

    it.effect("removing a document removes its chunks and vectors", () =>
      Effect.gen(function*() {
        const store = yield* KnowledgeStore.KnowledgeStore
        const db = yield* Database
        const { document } = yield* store.add(A, doc("faq/to-delete", "# Gone\n\nThis document will be removed soon."))
        const count = Effect.all({
          chunks: db.tenant(A)(db.sql<{ n: number }>`
            SELECT count(*)::int AS n FROM kb_chunks WHERE tenant_id = ${A} AND document_id = ${document.id}`).pipe(
              Effect.map((rows) => rows[0]?.n)
            ),
          vectors: Effect.map(adapter.vectors(A, document.id), (vs) => vs.length)
        })
        const before = yield* count
        assert.isAbove(before.chunks ?? 0, 0)
        assert.strictEqual(before.vectors, before.chunks)
        yield* store.remove(A, document.id)
        assert.deepStrictEqual(yield* count, { chunks: 0, vectors: 0 })
        const gone = yield* store.get(A, document.id).pipe(Effect.flip)
        assert.strictEqual(gone._tag, "DocumentNotFound")
        const hits = yield* store.search(A, query("removed soon", "vector", { topK: 100 }))
        assert.isFalse(hits.some((h) => h.documentId === document.id))
      }))

    it.effect("hybrid search finds a chunk by a word only in its text, and by a paraphrase", () =>
      Effect.gen(function*() {
        const store = yield* KnowledgeStore.KnowledgeStore
        const returns = yield* store.add(A, doc("faq/returns", refunds, { tags: ["returns"] }))
        const ship = yield* store.add(A, doc("faq/shipping", shipping))

        // (an earlier test added a copy of this chunk under another document: ties order by id)
        const byWord = yield* store.search(A, query("warehouse"))
        assert.isTrue(byWord.some((hit) => hit.documentId === returns.document.id && hit.ranks.fullText !== null))
        assert.include(byWord[0]?.text ?? "", "warehouse")
        assert.deepStrictEqual(byWord[0]?.headingPath, ["Returns", "Refund timing"])
        assert.isNotNull(byWord[0]?.ranks.fullText ?? null)

        // no lexeme in common with the chunk ("shipment" stems apart from "shipping"); found by vector
        const paraphrase = yield* store.search(A, query("shipment pricing internationale"))
        const found = paraphrase.find((hit) => hit.documentId === ship.document.id)
        assert.strictEqual(found?.ranks.vector, 1)

        for (const hit of [...byWord, ...paraphrase]) assert.isTrue(hit.score > 0 && hit.score <= 1)
        const onlyText = yield* store.search(A, query("warehouse", "full_text"))
        assert.strictEqual(onlyText[0]?.score, 1)
        assert.isNull(onlyText[0]?.ranks.vector ?? null)
      }))

    it.effect("tag and metadata filters", () =>
      Effect.gen(function*() {
        const store = yield* KnowledgeStore.KnowledgeStore
        const de = yield* store.add(A, doc("policy/de", "# Widerruf\n\nPolicy for Germany: fourteen day cancellation period.", {
          tags: ["policy", "eu"],
          metadata: { country: "DE", version: 2 }
        }))
        const us = yield* store.add(A, doc("policy/us", "# Cancellation\n\nPolicy for the US: thirty day cancellation period.", {
          tags: ["policy"],
          metadata: { country: "US", version: 2 }
        }))
        for (const mode of ["hybrid", "full_text", "vector"] as const) {
          const eu = yield* store.search(A, query("cancellation period policy", mode, { tags: ["eu"] }))
          assert.deepStrictEqual([...new Set(eu.map((h) => h.documentId))], [de.document.id], mode)
          const usOnly = yield* store.search(A, query("cancellation period policy", mode, { metadata: { country: "US" } }))
          assert.deepStrictEqual([...new Set(usOnly.map((h) => h.documentId))], [us.document.id], mode)
          const none = yield* store.search(A, query("cancellation period policy", mode, { metadata: { country: "FR" } }))
          assert.strictEqual(none.length, 0)
        }
        const listed = yield* store.list(A, { tag: "eu", limit: 10, offset: 0 })
        assert.deepStrictEqual(listed.map((d) => d.id), [de.document.id])
      }))

    it.effect("an embedder of another dimension is refused with DimensionMismatch", () =>
      Effect.gen(function*() {
        const store = yield* KnowledgeStore.KnowledgeStore
        yield* store.add(A, doc("dim/first", "# First\n\nWritten with the 256-dimensional embedder."))
        const other = yield* KnowledgeStore.make().pipe(Effect.provideService(Embedder, hashedEmbedder(64)))
        const refused = yield* other.add(A, doc("dim/second", "# Second\n\nWritten with a 64-dimensional embedder.")).pipe(Effect.flip)
        assert.strictEqual(refused._tag, "DimensionMismatch")
        const searching = yield* other.search(A, query("written", "vector")).pipe(Effect.flip)
        assert.strictEqual(searching._tag, "DimensionMismatch")
        // another tenant starts its own collection with the 64-dimensional embedder
        const forC = yield* other.add(C, doc("dim/c", "# C\n\nTenant C uses a smaller embedder."))
        assert.isTrue(forC.created)
      }))
  })
}
