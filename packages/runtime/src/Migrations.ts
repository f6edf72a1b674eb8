/**
 * Schema migrations, run on start by every assembly and by `tessera migrate`. The migrator locks
 * its table, so runners that start together migrate once.
 */
import * as Migrator from "@effect/sql/Migrator"
import * as Effect from "effect/Effect"
import core from "./migrations/0001_core.js"
import knowledge from "./migrations/0002_knowledge.js"
import tools from "./migrations/0003_tools.js"
import workflows from "./migrations/0004_workflows.js"
import edge from "./migrations/0005_edge.js"
import llm from "./migrations/0006_llm.js"
import routerFeedback from "./migrations/0007_router_feedback.js"
import journalFunction from "./migrations/0008_journal_function.js"
import lighterRunWrites from "./migrations/0009_lighter_run_writes.js"

const migrations = {
  "0001_core": core,
  "0002_knowledge": knowledge,
  "0003_tools": tools,
  "0004_workflows": workflows,
  "0005_edge": edge,
  "0006_llm": llm,
  "0007_router_feedback": routerFeedback,
  "0008_journal_function": journalFunction,
  "0009_lighter_run_writes": lighterRunWrites
}

export const loader: Migrator.Loader = Migrator.fromRecord(migrations)

/** The id of the newest migration this build knows. */
export const latest: number = Object.keys(migrations).length

export const run = Migrator.make({})({ loader }).pipe(
  Effect.tap((applied) =>
    applied.length > 0
      ? Effect.logInfo(`migrations applied: ${applied.map(([id, name]) => `${id}_${name}`).join(", ")}`)
      : Effect.void
  ),
  Effect.withSpan("Migrations.run")
)
