/**
 * The VectorStore on Postgres, in one of two forms chosen when the layer starts:
 *
 * - `pgvector`: when the `vector` extension is installed on the server (or can be created by
 *   the connecting user), embeddings go to `kb_chunks.vec` (`vector`, any dimension) and search
 *   is an approximate nearest-neighbour scan of an HNSW index (cosine). The index is a partial
 *   expression index per dimension (`vec::vector(<d>)` where `vector_dims(vec) = <d>`), created
 *   at start for the embedder's dimension. Filters (the tenant, which row-level security adds to
 *   every statement, and document filters) use pgvector's iterative index scan, so a small
 *   tenant's results are not starved by larger ones.
 * - `exact`: otherwise (the embedded server and the machine's stock Postgres), embeddings are
 *   `kb_chunks.embedding` (`float4[]`) and search is an exact scan of the tenant's chunks.
 *
 * Vectors are L2-normalised, so cosine similarity is the dot product. Switching form (installing
 * pgvector later, or `PGVECTOR=off`) needs a `reindex` of the documents written in the other.
 * Every statement runs in `db.tenant(tenantId)`, so row-level security scopes it even if a
 * filter were forgotten.
 */
import type { StorageError } from "@tessera/domain/Errors"
import type { TenantId } from "@tessera/domain/Ids"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Database } from "./Database.js"
import { Embedder } from "./Embedder.js"
import { storageError } from "./internal/storage.js"
import { VectorStore } from "./VectorStore.js"
import type { SearchOptions, VectorMatch, VectorRow } from "./VectorStore.js"

/** A Postgres array literal; each float32 value, printed as a double, reads back as the same float4. */
export const toArrayLiteral = (vector: Float32Array): string => `{${vector.join(",")}}`

export type Mode = "pgvector" | "exact"

export interface Options {
  /** `auto` (the default) uses pgvector when the server has it; `off` always scans `float4[]`. */
  readonly pgvector?: "auto" | "off"
  /** HNSW candidate list size at query time (`hnsw.ef_search`); default 100. */
  readonly efSearch?: number
}

/** Serialises concurrent starts of runners on the same database (any constant of our own). */
const setupLock = 0x7e55e7a

/**
 * Creates the extension, the `vec` column and the dimension's HNSW index when pgvector is
 * available; answers the form the store will use. DDL runs as the connecting user, once per
 * database (`IF NOT EXISTS`), under an advisory lock.
 */
const setup = (dimension: number, options: Options): Effect.Effect<Mode, StorageError, Database> =>
  Effect.gen(function*() {
    if (options.pgvector === "off") return "exact" as const
    const { sql } = yield* Database
    return yield* sql.withTransaction(Effect.gen(function*() {
      yield* sql`SELECT pg_advisory_xact_lock(${setupLock})`
      const [state] = yield* sql<{ available: boolean; installed: boolean; superuser: boolean }>`
        SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') AS available,
          EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector') AS installed,
          (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser`
      if (state === undefined || !state.available) return "exact" as const
      if (!state.installed) {
        if (!state.superuser) {
          yield* Effect.logWarning("pgvector is installed on the server but only a superuser can create it; using exact search")
          return "exact" as const
        }
        yield* sql`CREATE EXTENSION IF NOT EXISTS vector`
      }
      const d = sql.literal(String(dimension))
      yield* sql`ALTER TABLE kb_chunks ADD COLUMN IF NOT EXISTS vec vector`
      yield* sql`CREATE INDEX IF NOT EXISTS ${sql.literal(`kb_chunks_vec_hnsw_${dimension}`)} ON kb_chunks
        USING hnsw ((vec::vector(${d})) vector_cosine_ops) WHERE vector_dims(vec) = ${d}`
      return "pgvector" as const
    }))
  }).pipe(Effect.catchTag("SqlError", storageError("vectors.setup")))

export const make = (options: Options = {}): Effect.Effect<VectorStore["Type"] & { readonly mode: Mode }, StorageError, Database | Embedder> =>
  Effect.gen(function*() {
    const db = yield* Database
    const embedder = yield* Embedder
    const sql = db.sql
    const mode = yield* setup(embedder.dimension, options)
    const efSearch = options.efSearch ?? 100
    yield* Effect.logDebug(`vector store: Postgres, ${mode === "pgvector" ? "pgvector HNSW" : "exact float4[] scan"}`)

    const upsert = (tenantId: TenantId, documentId: string, rows: ReadonlyArray<VectorRow>): Effect.Effect<void, StorageError> =>
      rows.length === 0
        ? Effect.void
        : db.tenant(tenantId)(sql`
          INSERT INTO kb_chunks (tenant_id, document_id, position, text, heading_path, kind, start_offset, end_offset, ${
          sql.literal(mode === "pgvector" ? "vec" : "embedding")
        })
          SELECT ${tenantId}, ${documentId}, r.position, r.text, r.heading_path, r.kind, r.start_offset, r.end_offset, ${
          mode === "pgvector" ? sql`r.embedding::vector` : sql`r.embedding`
        }
          FROM jsonb_to_recordset(${
          JSON.stringify(rows.map(({ chunk, vector }) => ({
            position: chunk.position,
            text: chunk.text,
            heading_path: chunk.headingPath,
            kind: chunk.kind,
            start_offset: chunk.start,
            end_offset: chunk.end,
            embedding: Array.from(vector)
          })))
        }::jsonb) AS r(position integer, text text, heading_path text[], kind text, start_offset integer, end_offset integer, embedding float4[])
          ON CONFLICT (tenant_id, document_id, position) DO UPDATE SET ${
          mode === "pgvector" ? sql`vec = EXCLUDED.vec` : sql`embedding = EXCLUDED.embedding`
        }`).pipe(
          Effect.asVoid,
          Effect.catchTag("SqlError", storageError("vectors.upsert"))
        )

    const deleteDocument = (tenantId: TenantId, documentId: string): Effect.Effect<void, StorageError> =>
      db.tenant(tenantId)(
        sql`DELETE FROM kb_chunks WHERE tenant_id = ${tenantId} AND document_id = ${documentId}`
      ).pipe(Effect.asVoid, Effect.catchTag("SqlError", storageError("vectors.delete")))

    const documentCondition = (filter: ReadonlyArray<string> | undefined) =>
      filter === undefined
        ? sql``
        : sql`AND c.document_id IN (SELECT jsonb_array_elements_text(${JSON.stringify(filter)}::jsonb))`

    const exactSearch = (tenantId: TenantId, vector: Float32Array, options: SearchOptions) =>
      sql<{ document_id: string; position: number; similarity: number }>`
        SELECT document_id, position, similarity FROM (
          SELECT c.document_id, c.position,
            (SELECT sum(a * b) FROM unnest(c.embedding, q.v) AS t(a, b))::float8 AS similarity
          FROM kb_chunks c, (SELECT ${toArrayLiteral(vector)}::float4[] AS v) q
          WHERE c.tenant_id = ${tenantId} AND c.embedding IS NOT NULL ${documentCondition(options.documentFilter)}
        ) s
        ORDER BY similarity DESC, document_id, position
        LIMIT ${options.topK}`

    const indexedSearch = (tenantId: TenantId, vector: Float32Array, options: SearchOptions) => {
      // The dimension is inlined so the planner matches the partial expression index.
      const d = sql.literal(String(vector.length))
      const q = sql`${`[${vector.join(",")}]`}::vector(${d})`
      return Effect.zipRight(
        sql`SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true),
          set_config('hnsw.ef_search', ${String(Math.max(efSearch, options.topK))}, true)`,
        sql<{ document_id: string; position: number; similarity: number }>`
          SELECT document_id, position, similarity FROM (
            SELECT c.document_id, c.position, 1 - (c.vec::vector(${d}) <=> ${q}) AS similarity
            FROM kb_chunks c
            WHERE c.tenant_id = ${tenantId} AND vector_dims(c.vec) = ${d} ${documentCondition(options.documentFilter)}
            ORDER BY c.vec::vector(${d}) <=> ${q}
            LIMIT ${options.topK}
          ) s
          ORDER BY similarity DESC, document_id, position`
      )
    }

    const search = (
      tenantId: TenantId,
      vector: Float32Array,
      options: SearchOptions
    ): Effect.Effect<ReadonlyArray<VectorMatch>, StorageError> => {
      if (options.documentFilter !== undefined && options.documentFilter.length === 0) return Effect.succeed([])
      return db.tenant(tenantId)(
        mode === "pgvector" ? indexedSearch(tenantId, vector, options) : exactSearch(tenantId, vector, options)
      ).pipe(
        Effect.map((rows) =>
          rows.map((row) => ({ documentId: row.document_id, position: row.position, similarity: Number(row.similarity) }))
        ),
        Effect.catchTag("SqlError", storageError("vectors.search"))
      )
    }

    return { ...VectorStore.of({ upsert, deleteDocument, search }), mode }
  })

export const layerWith = (options: Options): Layer.Layer<VectorStore, StorageError, Database | Embedder> =>
  Layer.effect(VectorStore, make(options))

/** pgvector when the server has it, the exact `float4[]` scan otherwise. */
export const layer: Layer.Layer<VectorStore, StorageError, Database | Embedder> = layerWith({})

/** `PGVECTOR`: `auto` (default) or `off`. */
export const layerConfig: Layer.Layer<VectorStore, StorageError | ConfigError.ConfigError, Database | Embedder> = Layer
  .unwrapEffect(
    Effect.map(
      Config.literal("auto", "off")("PGVECTOR").pipe(Config.withDefault("auto" as const)),
      (pgvector) => layerWith({ pgvector })
    )
  )
