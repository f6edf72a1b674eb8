/**
 * The knowledge base: a tenant's collection (the embedder's model and dimension, recorded on the
 * first write), its documents, and their chunks with a full-text vector and an embedding.
 * Embeddings are `float4[]` (exact cosine scan: vectors are L2-normalised, so cosine is the dot
 * product); a pgvector or Qdrant adapter of the VectorStore port may index them elsewhere.
 * Same row-level security as the core tables: enabled, FORCED, one `tenant_isolation` policy
 * for `tessera_app`.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { tenantOwned } from "./tenantOwned.js"

const tenantTables = ["kb_collections", "kb_documents", "kb_chunks"] as const

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient

  yield* sql`
    CREATE TABLE kb_collections (
      tenant_id text NOT NULL,
      name text NOT NULL,
      model text NOT NULL,
      dimension integer NOT NULL CHECK (dimension > 0),
      text_search_config regconfig NOT NULL DEFAULT 'english',
      created_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (tenant_id, name)
    )`

  yield* sql`
    CREATE TABLE kb_documents (
      tenant_id text NOT NULL,
      id text NOT NULL,
      source_key text NOT NULL,
      title text NOT NULL,
      format text NOT NULL CHECK (format IN ('text', 'markdown', 'html')),
      content_hash text NOT NULL,
      content text NOT NULL,
      tags text[] NOT NULL DEFAULT '{}',
      metadata jsonb NOT NULL DEFAULT '{}',
      chunk_count integer NOT NULL DEFAULT 0,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (tenant_id, id),
      UNIQUE (tenant_id, content_hash),
      UNIQUE (tenant_id, source_key)
    )`
  yield* sql`CREATE INDEX kb_documents_tags ON kb_documents USING gin (tags)`
  yield* sql`CREATE INDEX kb_documents_metadata ON kb_documents USING gin (metadata jsonb_path_ops)`

  // array_to_string is only STABLE; on text[] it is immutable in fact, which a generated column needs.
  yield* sql`
    CREATE FUNCTION kb_heading_text(heading_path text[]) RETURNS text
      LANGUAGE sql IMMUTABLE PARALLEL SAFE
      AS $$ SELECT coalesce(array_to_string(heading_path, ' '), '') $$`

  yield* sql`
    CREATE TABLE kb_chunks (
      tenant_id text NOT NULL,
      document_id text NOT NULL,
      position integer NOT NULL,
      text text NOT NULL,
      heading_path text[] NOT NULL DEFAULT '{}',
      kind text NOT NULL CHECK (kind IN ('section', 'faq', 'list', 'paragraph')),
      start_offset integer NOT NULL,
      end_offset integer NOT NULL,
      ts_config regconfig NOT NULL DEFAULT 'english',
      tsv tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector(ts_config, kb_heading_text(heading_path)), 'A') ||
        setweight(to_tsvector(ts_config, text), 'B')
      ) STORED,
      embedding float4[],
      created_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (tenant_id, document_id, position),
      FOREIGN KEY (tenant_id, document_id) REFERENCES kb_documents(tenant_id, id) ON DELETE CASCADE
    )`
  yield* sql`CREATE INDEX kb_chunks_tsv ON kb_chunks USING gin (tsv)`

  for (const table of tenantTables) yield* tenantOwned(sql, table)
  yield* sql`GRANT EXECUTE ON FUNCTION kb_heading_text(text[]) TO tessera_app`
})
