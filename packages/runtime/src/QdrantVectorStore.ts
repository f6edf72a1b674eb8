/**
 * The VectorStore on Qdrant (`QDRANT_URL`). Chunk text, full-text vectors and citations stay in
 * Postgres; Qdrant holds only the embeddings.
 *
 * Tenancy: one collection per embedding dimension (`<prefix>_<dimension>`), shared by the
 * tenants, with a `tenant_id` keyword payload index marked `is_tenant` — Qdrant's recommended
 * layout for many small tenants (one collection per tenant costs memory and file handles per
 * tenant and does not scale to thousands). Every request this adapter sends carries a `must`
 * condition on `tenant_id` built by `tenantFilter`, so no call can reach another tenant's points;
 * point ids are derived from (tenant, document, position), so two tenants never share a point.
 *
 * Qdrant is not transactional with Postgres: a vector written for a document whose Postgres
 * transaction then rolls back stays until the document is re-indexed or deleted. Such a point is
 * harmless: search results are joined to `kb_chunks` under row-level security, and a match with
 * no chunk row is dropped.
 */
import { QdrantClient } from "@qdrant/js-client-rest"
import { StorageError } from "@tessera/domain/Errors"
import type { TenantId } from "@tessera/domain/Ids"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { createHash } from "node:crypto"
import { VectorStore } from "./VectorStore.js"
import type { SearchOptions, VectorMatch, VectorRow } from "./VectorStore.js"

export interface Options {
  /** e.g. `http://localhost:6333`. */
  readonly url: string
  readonly apiKey?: Redacted.Redacted<string>
  /** Collections are named `<prefix>_<dimension>`. Default `tessera_chunks`. */
  readonly collectionPrefix?: string
}

interface Condition {
  readonly key: string
  readonly match: { readonly value: string } | { readonly any: ReadonlyArray<string> }
}

/** The filter every request carries: the tenant's points, optionally narrowed further. */
export const tenantFilter = (tenantId: TenantId, ...more: ReadonlyArray<Condition>) => ({
  must: [{ key: "tenant_id", match: { value: tenantId } }, ...more].map((c) => ({
    key: c.key,
    match: "any" in c.match ? { any: [...c.match.any] } : { value: c.match.value }
  }))
})

/** A stable UUID for a chunk's point, distinct per tenant, document and position. */
export const pointId = (tenantId: TenantId, documentId: string, position: number): string => {
  const hex = createHash("sha256").update(`${tenantId}\u0000${documentId}\u0000${position}`).digest("hex")
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`
}

const failure = (operation: string) => (cause: unknown): StorageError =>
  new StorageError({ operation, reason: cause instanceof Error ? cause.message : String(cause) })

export const make = (options: Options): Effect.Effect<VectorStore["Type"]> =>
  Effect.gen(function*() {
    const client = new QdrantClient({
      url: options.url,
      ...(options.apiKey === undefined ? {} : { apiKey: Redacted.value(options.apiKey) }),
      checkCompatibility: false
    })
    const prefix = options.collectionPrefix ?? "tessera_chunks"
    const collectionOf = (dimension: number) => `${prefix}_${dimension}`
    const ready = new Set<string>()
    const creating = yield* Effect.makeSemaphore(1)

    const request = <A>(operation: string, run: () => Promise<A>): Effect.Effect<A, StorageError> =>
      Effect.tryPromise({ try: run, catch: failure(operation) }).pipe(
        Effect.tapError((error) => Effect.logWarning(`${operation} failed`, error))
      )

    /** Creates the dimension's collection and its tenant index once per process. */
    const ensureCollection = (dimension: number): Effect.Effect<string, StorageError> => {
      const name = collectionOf(dimension)
      if (ready.has(name)) return Effect.succeed(name)
      return creating.withPermits(1)(Effect.gen(function*() {
        if (ready.has(name)) return name
        const { exists } = yield* request("vectors.collection", () => client.collectionExists(name))
        if (!exists) {
          yield* request("vectors.collection", () =>
            client.createCollection(name, {
              vectors: { size: dimension, distance: "Cosine" },
              // Tenant-partitioned HNSW: build the graph per tenant, not across tenants.
              hnsw_config: { payload_m: 16, m: 0 }
            }))
          yield* request("vectors.collection", () =>
            client.createPayloadIndex(name, {
              field_name: "tenant_id",
              field_schema: { type: "keyword", is_tenant: true },
              wait: true
            }))
          yield* request("vectors.collection", () =>
            client.createPayloadIndex(name, { field_name: "document_id", field_schema: "keyword", wait: true }))
        }
        ready.add(name)
        return name
      }))
    }

    /** The collections this process knows (a deletion must reach a document's vectors in each). */
    const knownCollections = request("vectors.collections", () => client.getCollections()).pipe(
      Effect.map(({ collections }) => collections.map((c) => c.name).filter((n) => n.startsWith(`${prefix}_`)))
    )

    const deleteDocument = (tenantId: TenantId, documentId: string): Effect.Effect<void, StorageError> =>
      Effect.flatMap(knownCollections, (names) =>
        Effect.forEach(names, (name) =>
          request("vectors.delete", () =>
            client.delete(name, {
              wait: true,
              filter: tenantFilter(tenantId, { key: "document_id", match: { value: documentId } })
            })), { discard: true }))

    const upsert = (tenantId: TenantId, documentId: string, rows: ReadonlyArray<VectorRow>): Effect.Effect<void, StorageError> =>
      rows.length === 0
        ? Effect.void
        : Effect.gen(function*() {
          const name = yield* ensureCollection(rows[0]!.vector.length)
          yield* request("vectors.upsert", () =>
            client.upsert(name, {
              wait: true,
              points: rows.map(({ chunk, vector }) => ({
                id: pointId(tenantId, documentId, chunk.position),
                vector: Array.from(vector),
                payload: { tenant_id: tenantId, document_id: documentId, position: chunk.position }
              }))
            }))
        })

    const search = (
      tenantId: TenantId,
      vector: Float32Array,
      options: SearchOptions
    ): Effect.Effect<ReadonlyArray<VectorMatch>, StorageError> => {
      const documents = options.documentFilter
      if (documents !== undefined && documents.length === 0) return Effect.succeed([])
      return Effect.gen(function*() {
        const name = yield* ensureCollection(vector.length)
        const { points } = yield* request("vectors.search", () =>
          client.query(name, {
            query: Array.from(vector),
            limit: options.topK,
            with_payload: ["document_id", "position"],
            filter: documents === undefined
              ? tenantFilter(tenantId)
              : tenantFilter(tenantId, { key: "document_id", match: { any: documents } })
          }))
        return points.flatMap((point) => {
          const documentId = point.payload?.["document_id"]
          const position = point.payload?.["position"]
          return typeof documentId === "string" && typeof position === "number"
            ? [{ documentId, position, similarity: point.score }]
            : []
        })
      })
    }

    return VectorStore.of({ upsert, deleteDocument, search })
  })

export const layer = (options: Options): Layer.Layer<VectorStore> => Layer.effect(VectorStore, make(options))

/** `QDRANT_URL` (required), `QDRANT_API_KEY` (optional), `QDRANT_COLLECTION_PREFIX` (default `tessera_chunks`). */
export const layerConfig: Layer.Layer<VectorStore, ConfigError.ConfigError> = Layer.unwrapEffect(
  Effect.map(
    Config.all({
      url: Config.string("QDRANT_URL"),
      apiKey: Config.option(Config.redacted("QDRANT_API_KEY")),
      collectionPrefix: Config.string("QDRANT_COLLECTION_PREFIX").pipe(Config.withDefault("tessera_chunks"))
    }),
    ({ apiKey, collectionPrefix, url }) =>
      layer({ url, collectionPrefix, ...(Option.isSome(apiKey) ? { apiKey: apiKey.value } : {}) })
  )
)
