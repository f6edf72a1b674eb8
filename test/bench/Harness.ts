/**
 * What the Postgres-backed benchmarks share: a fresh migrated database with a pool of the given
 * size (the same pool serves Tessera and the raw baseline), percentiles and number formatting.
 */
import * as Migrations from "@tessera/runtime/Migrations"
import { Database, layerPg } from "@tessera/runtime/Database"
import { TestDatabaseUrl } from "@tessera/runtime/TestDatabase"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"

/** The p-quantile (nearest rank) of ascending values; NaN for none. */
export const percentile = (sorted: ReadonlyArray<number>, p: number): number =>
  sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!

export const fmt = (v: number, digits = 0) =>
  v.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits })

/** A fresh migrated database on `TEST_DATABASE_URL` (dropped at the end) with `poolSize` connections. */
export const layerDatabase = (poolSize: number) =>
  Layer.unwrapEffect(
    Effect.map(TestDatabaseUrl, ({ url }) =>
      Layer.effectDiscard(Migrations.run).pipe(
        Layer.provideMerge(Database.Default),
        Layer.provideMerge(layerPg(Redacted.make(url), { maxConnections: poolSize, applicationName: "tessera-bench" })),
        Layer.orDie
      ))
  ).pipe(Layer.provideMerge(TestDatabaseUrl.Default))
