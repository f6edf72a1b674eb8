/**
 * Knowledge contracts: documents a tenant adds, the chunks they are cut into (with what a
 * citation needs), and search hits. Tenancy is by construction: every store call takes the
 * tenant, and every row carries it.
 */
import * as Schema from "effect/Schema"

export const DocumentFormat = Schema.Literal("text", "markdown", "html")
export type DocumentFormat = typeof DocumentFormat.Type

export const Metadata = Schema.Record({ key: Schema.String, value: Schema.Union(Schema.String, Schema.Number, Schema.Boolean) })
export type Metadata = typeof Metadata.Type

/** What a caller adds. `sourceKey` is the caller's own stable key (a URL, a FAQ entry id). */
export class DocumentInput extends Schema.Class<DocumentInput>("DocumentInput")({
  sourceKey: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(500)),
  title: Schema.String.pipe(Schema.maxLength(500)),
  format: DocumentFormat,
  content: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(5_000_000)),
  tags: Schema.optionalWith(Schema.Array(Schema.String), { default: () => [] }),
  metadata: Schema.optionalWith(Metadata, { default: () => ({}) })
}) {}

export class Document extends Schema.Class<Document>("Document")({
  id: Schema.String,
  tenantId: Schema.String,
  sourceKey: Schema.String,
  title: Schema.String,
  format: DocumentFormat,
  /** SHA-256 of the normalised content: the same content twice is one document. */
  contentHash: Schema.String,
  tags: Schema.Array(Schema.String),
  metadata: Metadata,
  chunkCount: Schema.Int,
  createdAt: Schema.DateTimeUtc,
  updatedAt: Schema.DateTimeUtc
}) {}

/** A piece of a document, cut along its structure; `headingPath` and `position` make the citation. */
export class Chunk extends Schema.Class<Chunk>("Chunk")({
  /** 0-based order within the document. */
  position: Schema.Int,
  text: Schema.String,
  /** Headings above the chunk, outermost first (e.g. ["Returns", "Refund timing"]). */
  headingPath: Schema.Array(Schema.String),
  kind: Schema.Literal("section", "faq", "list", "paragraph"),
  /** Character offsets of the chunk in the document's plain text. */
  start: Schema.Int,
  end: Schema.Int
}) {}

export class SearchHit extends Schema.Class<SearchHit>("SearchHit")({
  documentId: Schema.String,
  sourceKey: Schema.String,
  title: Schema.String,
  position: Schema.Int,
  headingPath: Schema.Array(Schema.String),
  text: Schema.String,
  /** Fused score in [0, 1]: 1 for a chunk ranked first by every retriever; thresholdable. */
  score: Schema.Number,
  /** The rank each retriever gave it (null: not retrieved by that one). */
  ranks: Schema.Struct({ fullText: Schema.NullOr(Schema.Int), vector: Schema.NullOr(Schema.Int) })
}) {}

export const SearchMode = Schema.Literal("hybrid", "full_text", "vector")
export type SearchMode = typeof SearchMode.Type

export class SearchQuery extends Schema.Class<SearchQuery>("SearchQuery")({
  query: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(4_000)),
  topK: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 100)), { default: () => 5 }),
  mode: Schema.optionalWith(SearchMode, { default: () => "hybrid" as const }),
  tags: Schema.optionalWith(Schema.Array(Schema.String), { default: () => [] }),
  metadata: Schema.optionalWith(Metadata, { default: () => ({}) })
}) {}

export class DocumentNotFound extends Schema.TaggedError<DocumentNotFound>()("DocumentNotFound", {
  documentId: Schema.String
}) {
  readonly code = "document_not_found"
  override get message() {
    return `document ${this.documentId} does not exist`
  }
}

/** Embeddings of another dimension than the tenant's collection was created with. */
export class DimensionMismatch extends Schema.TaggedError<DimensionMismatch>()("DimensionMismatch", {
  collection: Schema.String,
  expected: Schema.Int,
  actual: Schema.Int
}) {
  readonly code = "embedding_dimension_mismatch"
  override get message() {
    return `collection ${this.collection} holds ${this.expected}-dimensional vectors; the embedder produced ${this.actual}`
  }
}

export class EmbeddingError extends Schema.TaggedError<EmbeddingError>()("EmbeddingError", {
  provider: Schema.String,
  reason: Schema.String
}) {
  readonly code = "embedding_failed"
  override get message() {
    return `embedding with ${this.provider} failed: ${this.reason}`
  }
}
