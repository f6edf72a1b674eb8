/**
 * The vector-index port. Adapters: `PgVectorStore` (Postgres `float4[]` exact cosine scan, the
 * embedded default) and, later, pgvector and Qdrant. Every method takes the tenant, so a call is
 * scoped by construction. Vectors are L2-normalised, so similarity is cosine = dot product.
 */
import type { StorageError } from "@tessera/domain/Errors"
import type { TenantId } from "@tessera/domain/Ids"
import type { Chunk } from "@tessera/domain/Knowledge"
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"

/** A chunk with its embedding. */
export interface VectorRow {
  readonly chunk: Chunk
  readonly vector: Float32Array
}

export interface SearchOptions {
  readonly topK: number
  /** Only chunks of these documents (absent: all the tenant's documents). */
  readonly documentFilter?: ReadonlyArray<string>
}

/** One match, best first; `similarity` is the cosine similarity in [-1, 1]. */
export interface VectorMatch {
  readonly documentId: string
  readonly position: number
  readonly similarity: number
}

export class VectorStore extends Context.Tag("@tessera/runtime/VectorStore")<VectorStore, {
  /** Stores (or replaces) the vectors of these chunks of the document. */
  readonly upsert: (
    tenantId: TenantId,
    documentId: string,
    rows: ReadonlyArray<VectorRow>
  ) => Effect.Effect<void, StorageError>
  /** Removes every vector of the document. */
  readonly deleteDocument: (tenantId: TenantId, documentId: string) => Effect.Effect<void, StorageError>
  /** The `topK` most similar chunks of the tenant, most similar first. */
  readonly search: (
    tenantId: TenantId,
    vector: Float32Array,
    options: SearchOptions
  ) => Effect.Effect<ReadonlyArray<VectorMatch>, StorageError>
}>() {}
