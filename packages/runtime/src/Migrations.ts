/**
 * Schema migrations, run on start by every assembly and by `tessera migrate`. The migrator locks
 * its table, so runners that start together migrate once.
 */
import * as Migrator from "@effect/sql/Migrator"
import * as Effect from "effect/Effect"
import core from "./migrations/0001_core.js"

export const loader: Migrator.Loader = Migrator.fromRecord({
  "0001_core": core
})

export const run = Migrator.make({})({ loader }).pipe(
  Effect.tap((applied) =>
    applied.length > 0
      ? Effect.logInfo(`migrations applied: ${applied.map(([id, name]) => `${id}_${name}`).join(", ")}`)
      : Effect.void
  ),
  Effect.withSpan("Migrations.run")
)
