/**
 * Typed clients for the entities, for internal services in another process. The process joins
 * the cluster as a client only (it owns no shards): it reads shard assignments from the same
 * Postgres and sends to the owning runner over the cluster's RPC protocol.
 *
 * ```ts
 * const program = Effect.gen(function*() {
 *   const tessera = yield* TesseraClient
 *   const admission = yield* tessera.tenant(tenantId).Admit({})
 * })
 * program.pipe(Effect.provide(TesseraClient.layerConfig)) // DATABASE_URL
 * ```
 */
import type * as PgClient from "@effect/sql-pg/PgClient"
import type { SqlError } from "@effect/sql/SqlError"
import type { RunId, SessionId, TenantId } from "@tessera/domain/Ids"
import * as RunEntity from "@tessera/domain/RunEntity"
import * as SessionEntity from "@tessera/domain/SessionEntity"
import { TenantEntity } from "@tessera/domain/TenantEntity"
import type { ConfigError } from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ClusterRunner from "./ClusterRunner.js"
import * as Database from "./Database.js"

export class TesseraClient extends Effect.Service<TesseraClient>()("@tessera/runtime/TesseraClient", {
  effect: Effect.gen(function*() {
    const tenants = yield* TenantEntity.client
    const sessions = yield* SessionEntity.SessionEntity.client
    const runs = yield* RunEntity.handles
    return {
      tenant: (tenantId: TenantId) => tenants(tenantId),
      session: (tenantId: TenantId, sessionId: SessionId) => sessions(SessionEntity.entityId(tenantId, sessionId)),
      run: (tenantId: TenantId, runId: RunId) => runs(tenantId, runId)
    } as const
  })
}) {
  /** A client-only cluster member on `DATABASE_URL`. */
  static readonly layerConfig: Layer.Layer<TesseraClient | PgClient.PgClient, ConfigError | SqlError> =
    TesseraClient.Default.pipe(
      Layer.provide(ClusterRunner.layerClient),
      Layer.provideMerge(Database.layerConfig)
    )
}
