/**
 * The VectorStore on Postgres without extensions: embeddings live in `kb_chunks.embedding`
 * (`float4[]`) and search is an exact scan of the tenant's chunks. Vectors are L2-normalised, so
 * the cosine similarity is the dot product, computed in SQL. Every statement runs in
 * `db.tenant(tenantId)`, so row-level security scopes it even if a filter were forgotten.
 */
import type { StorageError } from "@tessera/domain/Errors"
import type { TenantId } from "@tessera/domain/Ids"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Database } from "./Database.js"
import { storageError } from "./internal/storage.js"
import { VectorStore } from "./VectorStore.js"
import type { SearchOptions, VectorMatch, VectorRow } from "./VectorStore.js"

/** A Postgres array literal; each float32 value, printed as a double, reads back as the same float4. */
export const toArrayLiteral = (vector: Float32Array): string => `{${vector.join(",")}}`

export const make: Effect.Effect<VectorStore["Type"], never, Database> = Effect.gen(function*() {
  const db = yield* Database
  const sql = db.sql

  const upsert = (tenantId: TenantId, documentId: string, rows: ReadonlyArray<VectorRow>): Effect.Effect<void, StorageError> =>
    rows.length === 0
      ? Effect.void
      : db.tenant(tenantId)(sql`
          INSERT INTO kb_chunks (tenant_id, document_id, position, text, heading_path, kind, start_offset, end_offset, embedding)
          SELECT ${tenantId}, ${documentId}, r.position, r.text, r.heading_path, r.kind, r.start_offset, r.end_offset, r.embedding
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
          ON CONFLICT (tenant_id, document_id, position) DO UPDATE SET embedding = EXCLUDED.embedding`).pipe(
        Effect.asVoid,
        Effect.catchTag("SqlError", storageError("vectors.upsert"))
      )

  const deleteDocument = (tenantId: TenantId, documentId: string): Effect.Effect<void, StorageError> =>
    db.tenant(tenantId)(
      sql`DELETE FROM kb_chunks WHERE tenant_id = ${tenantId} AND document_id = ${documentId}`
    ).pipe(Effect.asVoid, Effect.catchTag("SqlError", storageError("vectors.delete")))

  const search = (
    tenantId: TenantId,
    vector: Float32Array,
    options: SearchOptions
  ): Effect.Effect<ReadonlyArray<VectorMatch>, StorageError> => {
    const filter = options.documentFilter
    if (filter !== undefined && filter.length === 0) return Effect.succeed([])
    return db.tenant(tenantId)(sql<{ document_id: string; position: number; similarity: number }>`
      SELECT document_id, position, similarity FROM (
        SELECT c.document_id, c.position,
          (SELECT sum(a * b) FROM unnest(c.embedding, q.v) AS t(a, b))::float8 AS similarity
        FROM kb_chunks c, (SELECT ${toArrayLiteral(vector)}::float4[] AS v) q
        WHERE c.tenant_id = ${tenantId} AND c.embedding IS NOT NULL
          ${
      filter === undefined
        ? sql``
        : sql`AND c.document_id IN (SELECT jsonb_array_elements_text(${JSON.stringify(filter)}::jsonb))`
    }
      ) s
      ORDER BY similarity DESC, document_id, position
      LIMIT ${options.topK}`).pipe(
      Effect.map((rows) =>
        rows.map((row) => ({ documentId: row.document_id, position: row.position, similarity: Number(row.similarity) }))
      ),
      Effect.catchTag("SqlError", storageError("vectors.search"))
    )
  }

  return VectorStore.of({ upsert, deleteDocument, search })
})

export const layer: Layer.Layer<VectorStore, never, Database> = Layer.effect(VectorStore, make)
