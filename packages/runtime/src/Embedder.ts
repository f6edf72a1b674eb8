/**
 * The embedding port. Adapters: `LocalEmbedder` (deterministic, no network, the embedded
 * default) and `OpenAiEmbedder` (any OpenAI-compatible `/v1/embeddings`). Vectors are
 * L2-normalised, so cosine similarity is their dot product.
 */
import type { EmbeddingError } from "@tessera/domain/Knowledge"
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"

export class Embedder extends Context.Tag("@tessera/runtime/Embedder")<Embedder, {
  /** e.g. `local/hash-384` or `openai/text-embedding-3-small`: recorded per collection. */
  readonly model: string
  readonly dimension: number
  readonly embed: (texts: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<Float32Array>, EmbeddingError>
}>() {}
