/**
 * A tenant's knowledge base: documents are cut into chunks (`Chunker`), embedded in batches
 * (`Embedder`), stored in Postgres (text + full-text vector) and the `VectorStore`, and searched
 * by full text, by vector, or both fused by reciprocal rank fusion. Every call takes the tenant
 * and runs in `db.tenant(tenantId)`, so row-level security scopes it.
 */
import { StorageError } from "@tessera/domain/Errors"
import type { TenantId } from "@tessera/domain/Ids"
import {
  DimensionMismatch,
  Document,
  DocumentNotFound,
  EmbeddingError,
  SearchHit
} from "@tessera/domain/Knowledge"
import type { Chunk, DocumentFormat, DocumentInput, Metadata, SearchQuery } from "@tessera/domain/Knowledge"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import { createHash, randomBytes } from "node:crypto"
import { chunk, toPlainText } from "./Chunker.js"
import { Database } from "./Database.js"
import { Embedder } from "./Embedder.js"
import { storageError } from "./internal/storage.js"
import { VectorStore } from "./VectorStore.js"

export interface Options {
  /** The collection of the tenant this store writes (default `default`). */
  readonly collection?: string
  /** The Postgres text-search configuration recorded with a new collection (default `english`). */
  readonly textSearchConfig?: string
  readonly maxChars?: number
  readonly overlapChars?: number
  /** Texts per embedder call (default 64). */
  readonly batchSize?: number
}

/** The reciprocal-rank-fusion constant. */
export const rrfK = 60

export interface AddResult {
  readonly document: Document
  /** false: a document with the same content already existed, or `sourceKey`'s document was replaced. */
  readonly created: boolean
}

export interface ListOptions {
  readonly tag?: string
  readonly limit: number
  readonly offset: number
}

/** Whitespace-normalised plain text; its SHA-256 is the content hash. */
export const normalise = (plain: string): string => plain.normalize("NFC").replace(/\s+/g, " ").trim()

export const contentHash = (format: DocumentFormat, content: string): string =>
  createHash("sha256").update(normalise(toPlainText(format, content))).digest("hex")

/** What a chunk's embedding is computed from: its headings, then its text. */
const embeddingText = (c: Chunk): string => [...c.headingPath, c.text].join("\n")

interface DocumentRow {
  readonly tenant_id: string
  readonly id: string
  readonly source_key: string
  readonly title: string
  readonly format: string
  readonly content_hash: string
  readonly tags: ReadonlyArray<string>
  readonly metadata: unknown
  readonly chunk_count: number
  readonly created_at: Date
  readonly updated_at: Date
}

interface CollectionRow {
  readonly model: string
  readonly dimension: number
  readonly text_search_config: string
}

const documentColumns = "tenant_id, id, source_key, title, format, content_hash, tags, metadata, chunk_count, created_at, updated_at"

const decodeDocument = (row: DocumentRow): Effect.Effect<Document, StorageError> =>
  Schema.decodeUnknown(Document)({
    id: row.id,
    tenantId: row.tenant_id,
    sourceKey: row.source_key,
    title: row.title,
    format: row.format,
    contentHash: row.content_hash,
    tags: row.tags,
    metadata: row.metadata,
    chunkCount: row.chunk_count,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString()
  }).pipe(Effect.mapError((error) => new StorageError({ operation: "decode document", reason: String(error) })))

interface Ranked {
  readonly documentId: string
  readonly position: number
  fullText: number | null
  vector: number | null
}

export const make = (options: Options = {}) =>
  Effect.gen(function*() {
    const db = yield* Database
    const embedder = yield* Embedder
    const vectors = yield* VectorStore
    const sql = db.sql
    const collection = options.collection ?? "default"
    const defaultConfig = options.textSearchConfig ?? "english"
    const chunkOptions = { maxChars: options.maxChars ?? 1200, overlapChars: options.overlapChars ?? 150 }
    const batchSize = options.batchSize ?? 64

    const mismatch = (expected: number, actual: number) =>
      new DimensionMismatch({ collection, expected, actual })

    /** The tenant's collection, created with this embedder's model and dimension on the first write. */
    const ensureCollection = (tenantId: TenantId): Effect.Effect<CollectionRow, StorageError | DimensionMismatch> =>
      db.tenant(tenantId)(Effect.gen(function*() {
        yield* sql`INSERT INTO kb_collections (tenant_id, name, model, dimension, text_search_config)
          VALUES (${tenantId}, ${collection}, ${embedder.model}, ${embedder.dimension}, ${defaultConfig}::regconfig)
          ON CONFLICT DO NOTHING`
        return yield* readCollection(tenantId)
      })).pipe(
        Effect.catchTag("SqlError", storageError("knowledge.collection")),
        Effect.flatMap((row): Effect.Effect<CollectionRow, StorageError | DimensionMismatch> =>
          row === undefined
            ? Effect.fail(new StorageError({ operation: "knowledge.collection", reason: "collection vanished" }))
            : row.dimension === embedder.dimension
            ? Effect.succeed(row)
            : Effect.fail(mismatch(row.dimension, embedder.dimension))
        )
      )

    const readCollection = (tenantId: TenantId) =>
      sql<CollectionRow>`SELECT model, dimension, text_search_config::text AS text_search_config FROM kb_collections
        WHERE tenant_id = ${tenantId} AND name = ${collection}`.pipe(Effect.map((rows) => rows[0]))

    const embedAll = (
      texts: ReadonlyArray<string>,
      dimension: number
    ): Effect.Effect<ReadonlyArray<Float32Array>, EmbeddingError | DimensionMismatch> =>
      Effect.forEach(
        Array.from({ length: Math.ceil(texts.length / batchSize) }, (_, i) => texts.slice(i * batchSize, (i + 1) * batchSize)),
        (batch) => embedder.embed(batch),
        { concurrency: 1 }
      ).pipe(
        Effect.map((batches) => batches.flat()),
        Effect.filterOrFail(
          (vs) => vs.length === texts.length,
          (vs) => new EmbeddingError({ provider: embedder.model, reason: `${vs.length} vectors for ${texts.length} texts` })
        ),
        Effect.flatMap((vs) => {
          const wrong = vs.find((v) => v.length !== dimension)
          return wrong === undefined ? Effect.succeed(vs) : Effect.fail(mismatch(dimension, wrong.length))
        })
      )

    /** Inserts the chunk rows and their vectors; runs inside the caller's tenant transaction. */
    const writeChunks = (
      tenantId: TenantId,
      documentId: string,
      chunks: ReadonlyArray<Chunk>,
      embeddings: ReadonlyArray<Float32Array>,
      config: string
    ) =>
      Effect.gen(function*() {
        yield* vectors.deleteDocument(tenantId, documentId)
        yield* sql`DELETE FROM kb_chunks WHERE tenant_id = ${tenantId} AND document_id = ${documentId}`
        if (chunks.length === 0) return
        yield* sql`
          INSERT INTO kb_chunks (tenant_id, document_id, position, text, heading_path, kind, start_offset, end_offset, ts_config)
          SELECT ${tenantId}, ${documentId}, r.position, r.text, r.heading_path, r.kind, r.start_offset, r.end_offset, ${config}::regconfig
          FROM jsonb_to_recordset(${
          JSON.stringify(chunks.map((c) => ({
            position: c.position,
            text: c.text,
            heading_path: c.headingPath,
            kind: c.kind,
            start_offset: c.start,
            end_offset: c.end
          })))
        }::jsonb) AS r(position integer, text text, heading_path text[], kind text, start_offset integer, end_offset integer)`
        yield* vectors.upsert(tenantId, documentId, chunks.map((c, i) => ({ chunk: c, vector: embeddings[i]! })))
      })

    const prepare = (tenantId: TenantId, format: DocumentFormat, content: string) =>
      Effect.gen(function*() {
        const coll = yield* ensureCollection(tenantId)
        const chunks = chunk({ format, content }, chunkOptions)
        const embeddings = yield* embedAll(chunks.map(embeddingText), coll.dimension)
        return { coll, chunks, embeddings }
      })

    const add = (
      tenantId: TenantId,
      input: DocumentInput
    ): Effect.Effect<AddResult, StorageError | EmbeddingError | DimensionMismatch> =>
      Effect.gen(function*() {
        const hash = contentHash(input.format, input.content)
        const existing = yield* db.tenant(tenantId)(sql<DocumentRow>`
          SELECT ${sql.literal(documentColumns)} FROM kb_documents
          WHERE tenant_id = ${tenantId} AND (content_hash = ${hash} OR source_key = ${input.sourceKey})`)
        const same = existing.find((row) => row.content_hash === hash)
        if (same !== undefined) return { document: yield* decodeDocument(same), created: false }
        const previous = existing.find((row) => row.source_key === input.sourceKey)

        const { chunks, coll, embeddings } = yield* prepare(tenantId, input.format, input.content)
        const id = previous?.id ?? `doc_${randomBytes(12).toString("hex")}`
        const fields = {
          title: input.title,
          format: input.format,
          hash,
          content: input.content,
          tags: JSON.stringify(input.tags),
          metadata: JSON.stringify(input.metadata)
        }
        const written = yield* db.tenant(tenantId)(Effect.gen(function*() {
          const rows = previous !== undefined
            ? yield* sql<DocumentRow>`
                UPDATE kb_documents SET title = ${fields.title}, format = ${fields.format}, content_hash = ${fields.hash},
                  content = ${fields.content}, tags = ARRAY(SELECT jsonb_array_elements_text(${fields.tags}::jsonb)),
                  metadata = ${fields.metadata}::jsonb, chunk_count = ${chunks.length}, updated_at = now()
                WHERE tenant_id = ${tenantId} AND id = ${id}
                RETURNING ${sql.literal(documentColumns)}`
            : yield* sql<DocumentRow>`
                INSERT INTO kb_documents (tenant_id, id, source_key, title, format, content_hash, content, tags, metadata, chunk_count)
                VALUES (${tenantId}, ${id}, ${input.sourceKey}, ${fields.title}, ${fields.format}, ${fields.hash}, ${fields.content},
                  ARRAY(SELECT jsonb_array_elements_text(${fields.tags}::jsonb)), ${fields.metadata}::jsonb, ${chunks.length})
                ON CONFLICT DO NOTHING
                RETURNING ${sql.literal(documentColumns)}`
          const row = rows[0]
          if (row === undefined) {
            // A concurrent add wrote the same content (or source key) first.
            const raced = yield* sql<DocumentRow>`SELECT ${sql.literal(documentColumns)} FROM kb_documents
              WHERE tenant_id = ${tenantId} AND (content_hash = ${hash} OR source_key = ${input.sourceKey})
              ORDER BY (content_hash = ${hash}) DESC LIMIT 1`
            return { row: raced[0], created: false }
          }
          yield* writeChunks(tenantId, id, chunks, embeddings, coll.text_search_config)
          return { row, created: previous === undefined }
        })).pipe(Effect.catchTag("SqlError", storageError("knowledge.add")))
        if (written.row === undefined) {
          return yield* new StorageError({ operation: "knowledge.add", reason: "document vanished during a concurrent add" })
        }
        return { document: yield* decodeDocument(written.row), created: written.created }
      }).pipe(Effect.catchTag("SqlError", storageError("knowledge.add")), Effect.withSpan("KnowledgeStore.add"))

    const list = (tenantId: TenantId, options: ListOptions): Effect.Effect<ReadonlyArray<Document>, StorageError> =>
      db.tenant(tenantId)(sql<DocumentRow>`
        SELECT ${sql.literal(documentColumns)} FROM kb_documents
        WHERE tenant_id = ${tenantId} ${options.tag === undefined ? sql`` : sql`AND ${options.tag} = ANY(tags)`}
        ORDER BY created_at DESC, id
        LIMIT ${options.limit} OFFSET ${options.offset}`).pipe(
        Effect.catchTag("SqlError", storageError("knowledge.list")),
        Effect.flatMap((rows) => Effect.forEach(rows, decodeDocument))
      )

    const findRow = (tenantId: TenantId, id: string) =>
      sql<DocumentRow & { readonly content: string }>`
        SELECT ${sql.literal(documentColumns)}, content FROM kb_documents WHERE tenant_id = ${tenantId} AND id = ${id}`.pipe(
        Effect.map((rows) => rows[0])
      )

    const get = (tenantId: TenantId, id: string): Effect.Effect<Document, StorageError | DocumentNotFound> =>
      db.tenant(tenantId)(findRow(tenantId, id)).pipe(
        Effect.catchTag("SqlError", storageError("knowledge.get")),
        Effect.flatMap((row): Effect.Effect<Document, StorageError | DocumentNotFound> =>
          row === undefined ? Effect.fail(new DocumentNotFound({ documentId: id })) : decodeDocument(row)
        )
      )

    const remove = (tenantId: TenantId, id: string): Effect.Effect<void, StorageError | DocumentNotFound> =>
      db.tenant(tenantId)(Effect.gen(function*() {
        const deleted = yield* sql`DELETE FROM kb_documents WHERE tenant_id = ${tenantId} AND id = ${id} RETURNING id`
        if (deleted.length === 0) return yield* new DocumentNotFound({ documentId: id })
        yield* vectors.deleteDocument(tenantId, id)
      })).pipe(Effect.catchTag("SqlError", storageError("knowledge.remove")))

    const reindex = (
      tenantId: TenantId,
      id: string
    ): Effect.Effect<Document, StorageError | DocumentNotFound | EmbeddingError | DimensionMismatch> =>
      Effect.gen(function*() {
        const row = yield* db.tenant(tenantId)(findRow(tenantId, id))
        if (row === undefined) return yield* new DocumentNotFound({ documentId: id })
        const format = row.format === "markdown" || row.format === "html" ? row.format : "text"
        const { chunks, coll, embeddings } = yield* prepare(tenantId, format, row.content)
        const updated = yield* db.tenant(tenantId)(Effect.gen(function*() {
          const rows = yield* sql<DocumentRow>`UPDATE kb_documents SET chunk_count = ${chunks.length}, updated_at = now()
            WHERE tenant_id = ${tenantId} AND id = ${id} RETURNING ${sql.literal(documentColumns)}`
          const doc = rows[0]
          if (doc === undefined) return yield* new DocumentNotFound({ documentId: id })
          yield* writeChunks(tenantId, id, chunks, embeddings, coll.text_search_config)
          return doc
        }))
        return yield* decodeDocument(updated)
      }).pipe(Effect.catchTag("SqlError", storageError("knowledge.reindex")), Effect.withSpan("KnowledgeStore.reindex"))

    const documentFilterSql = (tags: ReadonlyArray<string>, metadata: Metadata) =>
      sql`${
        tags.length === 0 ? sql`` : sql`AND d.tags @> ARRAY(SELECT jsonb_array_elements_text(${JSON.stringify(tags)}::jsonb))`
      } ${Object.keys(metadata).length === 0 ? sql`` : sql`AND d.metadata @> ${JSON.stringify(metadata)}::jsonb`}`

    const fullTextRanks = (tenantId: TenantId, query: SearchQuery, config: string, limit: number) =>
      // Any of the query's lexemes (OR), ranked by cover density: a question in natural words
      // rarely has every word in one chunk, which `websearch_to_tsquery`'s AND would need.
      sql<{ document_id: string; position: number }>`
        WITH q AS (
          SELECT (SELECT string_agg('''' || replace(replace(l, '\\', '\\\\'), '''', '''''') || '''', ' | ')
                  FROM unnest(tsvector_to_array(to_tsvector(${config}::regconfig, ${query.query}))) AS l)::tsquery AS q
        )
        SELECT c.document_id, c.position
        FROM q, kb_chunks c JOIN kb_documents d ON d.tenant_id = c.tenant_id AND d.id = c.document_id
        WHERE c.tenant_id = ${tenantId} AND c.tsv @@ q.q ${documentFilterSql(query.tags, query.metadata)}
        ORDER BY ts_rank_cd(c.tsv, q.q) DESC, c.document_id, c.position
        LIMIT ${limit}`

    const search = (
      tenantId: TenantId,
      query: SearchQuery
    ): Effect.Effect<ReadonlyArray<SearchHit>, StorageError | EmbeddingError | DimensionMismatch> =>
      Effect.gen(function*() {
        const candidates = Math.min(Math.max(query.topK * 4, 20), 200)
        const filtered = query.tags.length > 0 || Object.keys(query.metadata).length > 0
        const setup = yield* db.tenant(tenantId)(Effect.gen(function*() {
          const coll = yield* readCollection(tenantId)
          const documentFilter = filtered
            ? (yield* sql<{ id: string }>`SELECT d.id FROM kb_documents d WHERE d.tenant_id = ${tenantId}
                ${documentFilterSql(query.tags, query.metadata)}`).map((r) => r.id)
            : undefined
          return { coll, documentFilter }
        }))
        const config = setup.coll?.text_search_config ?? defaultConfig

        const fullText = query.mode === "vector"
          ? Effect.succeed([])
          : db.tenant(tenantId)(fullTextRanks(tenantId, query, config, candidates))
        const vector = query.mode === "full_text" || setup.coll === undefined
          ? Effect.succeed([])
          : Effect.gen(function*() {
            const coll = setup.coll!
            if (coll.dimension !== embedder.dimension) return yield* mismatch(coll.dimension, embedder.dimension)
            const [v] = yield* embedAll([query.query], coll.dimension)
            return yield* vectors.search(tenantId, v!, {
              topK: candidates,
              ...(setup.documentFilter === undefined ? {} : { documentFilter: setup.documentFilter })
            })
          })
        const [ftRows, vRows] = yield* Effect.all([fullText, vector], { concurrency: 2 })

        const fused = new Map<string, Ranked>()
        const entry = (documentId: string, position: number): Ranked => {
          const key = `${documentId}\u0000${position}`
          let found = fused.get(key)
          if (found === undefined) {
            found = { documentId, position, fullText: null, vector: null }
            fused.set(key, found)
          }
          return found
        }
        ftRows.forEach((r, i) => {
          entry(r.document_id, r.position).fullText = i + 1
        })
        vRows.forEach((r, i) => {
          entry(r.documentId, r.position).vector = i + 1
        })
        const retrievers = query.mode === "hybrid" ? 2 : 1
        const best = retrievers / (rrfK + 1)
        const rrf = (rank: number | null) => rank === null ? 0 : 1 / (rrfK + rank)
        const ranked = Array.from(fused.values())
          .map((r) => ({ ...r, score: (rrf(r.fullText) + rrf(r.vector)) / best }))
          .sort((a, b) =>
            b.score - a.score || a.documentId.localeCompare(b.documentId) || a.position - b.position
          )
          .slice(0, query.topK)
        if (ranked.length === 0) return []

        const rows = yield* db.tenant(tenantId)(sql<{
          document_id: string
          position: number
          text: string
          heading_path: ReadonlyArray<string>
          source_key: string
          title: string
        }>`
          SELECT c.document_id, c.position, c.text, c.heading_path, d.source_key, d.title
          FROM kb_chunks c JOIN kb_documents d ON d.tenant_id = c.tenant_id AND d.id = c.document_id
          -- the LIMIT gives the planner the number of hits: it assumes 100 rows from a function
          JOIN (SELECT * FROM jsonb_to_recordset(${
          JSON.stringify(ranked.map((r) => ({ document_id: r.documentId, position: r.position })))
        }::jsonb) AS r(document_id text, position integer) LIMIT ${ranked.length}) AS r
            ON r.document_id = c.document_id AND r.position = c.position
          WHERE c.tenant_id = ${tenantId}`)
        const byKey = new Map(rows.map((row) => [`${row.document_id}\u0000${row.position}`, row]))
        return ranked.flatMap((r) => {
          const row = byKey.get(`${r.documentId}\u0000${r.position}`)
          return row === undefined ? [] : [
            new SearchHit({
              documentId: r.documentId,
              sourceKey: row.source_key,
              title: row.title,
              position: r.position,
              headingPath: row.heading_path,
              text: row.text,
              score: Math.min(1, r.score),
              ranks: { fullText: r.fullText, vector: r.vector }
            })
          ]
        })
      }).pipe(Effect.catchTag("SqlError", storageError("knowledge.search")), Effect.withSpan("KnowledgeStore.search"))

    return { add, list, get, remove, reindex, search } as const
  })

export class KnowledgeStore extends Effect.Service<KnowledgeStore>()("@tessera/runtime/KnowledgeStore", {
  effect: make()
}) {}

export const layer: Layer.Layer<KnowledgeStore, never, Database | Embedder | VectorStore> = KnowledgeStore.Default

/** A store with these options (collection, text-search config, chunk sizes, batch size). */
export const layerWith = (options: Options): Layer.Layer<KnowledgeStore, never, Database | Embedder | VectorStore> =>
  Layer.effect(KnowledgeStore, Effect.map(make(options), (store) => KnowledgeStore.make(store)))
