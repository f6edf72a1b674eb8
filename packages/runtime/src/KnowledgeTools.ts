/** `knowledge.search`: the tenant's knowledge base through the KnowledgeStore (hybrid by default). */
import { ToolFailed } from "@tessera/domain/ToolError"
import { SearchMode, SearchQuery } from "@tessera/domain/Knowledge"
import { TenantId } from "@tessera/domain/Ids"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { KnowledgeStore } from "./KnowledgeStore.js"
import * as Tool from "./Tool.js"

export const SearchInput = Schema.Struct({
  query: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(4_000)),
  top_k: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 100)), { default: () => 5 }),
  mode: Schema.optionalWith(SearchMode, { default: () => "hybrid" as const }),
  tags: Schema.optionalWith(Schema.Array(Schema.String), { default: () => [] })
})

export const Hit = Schema.Struct({
  id: Schema.String,
  document_id: Schema.String,
  source_key: Schema.String,
  /** The same as source_key: where the passage comes from. */
  source: Schema.String,
  title: Schema.String,
  heading_path: Schema.Array(Schema.String),
  text: Schema.String,
  score: Schema.Number
})

export const SearchOutput = Schema.Struct({
  hits: Schema.Array(Hit),
  /** The best hit's score (0 when nothing matched): what `faq_handling` thresholds on. */
  score: Schema.Number
})

export const make = Effect.gen(function*() {
  const store = yield* KnowledgeStore

  const search = Tool.make({
    name: "knowledge.search",
    description: "Searches the tenant's knowledge base.",
    input: SearchInput,
    output: SearchOutput,
    timeout: "10 seconds",
    retry: Tool.ioRetry,
    idempotent: true,
    transactional: false,
    run: (input, context) =>
      store.search(
        TenantId.make(context.tenantId),
        new SearchQuery({ query: input.query, topK: input.top_k, mode: input.mode, tags: input.tags })
      ).pipe(
        Effect.map((hits) => ({
          hits: hits.map((h) => ({
            id: `${h.documentId}#${h.position}`,
            document_id: h.documentId,
            source_key: h.sourceKey,
            source: h.sourceKey,
            title: h.title,
            heading_path: h.headingPath,
            text: h.text,
            score: h.score
          })),
          score: hits[0]?.score ?? 0
        })),
        Effect.mapError((error) =>
          new ToolFailed({ tool: "knowledge.search", reason: error.message, retryable: error._tag !== "DimensionMismatch" })
        )
      )
  })

  return [search] as const
})
