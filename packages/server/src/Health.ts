/**
 * `GET /healthz`: the process is up. `GET /readyz`: the database answers and is migrated to
 * this build's latest migration, and this node holds shards of the cluster. 200 with the checks
 * when ready, 503 with the failing checks otherwise.
 */
import * as ClusterMetrics from "@effect/cluster/ClusterMetrics"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Migrations from "@tessera/runtime/Migrations"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"

interface Check {
  readonly ok: boolean
  readonly detail: string
}

const database = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ latest: number | null }>`SELECT max(migration_id) AS latest FROM effect_sql_migrations`
  const latest = rows[0]?.latest ?? 0
  return latest >= Migrations.latest
    ? { ok: true, detail: `migrated to ${latest}` }
    : { ok: false, detail: `at migration ${latest}, expected ${Migrations.latest}` }
}).pipe(
  Effect.timeout("2 seconds"),
  Effect.catchAll((error): Effect.Effect<Check> => Effect.succeed({ ok: false, detail: String(error) }))
)

const sharding = Effect.map(Metric.value(ClusterMetrics.shards), (state): Check =>
  state.value > 0
    ? { ok: true, detail: `${state.value} shards held` }
    : { ok: false, detail: "no shards acquired yet" })

export const routes = HttpRouter.empty.pipe(
  HttpRouter.get("/healthz", HttpServerResponse.unsafeJson({ status: "ok" })),
  HttpRouter.get(
    "/readyz",
    Effect.gen(function*() {
      const checks = yield* Effect.all({ database, sharding }, { concurrency: "unbounded" })
      const ready = checks.database.ok && checks.sharding.ok
      return HttpServerResponse.unsafeJson({ status: ready ? "ready" : "not_ready", checks }, {
        status: ready ? 200 : 503
      })
    })
  )
)
