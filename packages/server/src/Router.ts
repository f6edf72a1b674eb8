/**
 * `tessera router eval <queries.jsonl> [--model model.json]` and
 * `tessera router train <queries.jsonl> [--out model.json] [--tenant <id>]`.
 *
 * `eval` replays a labelled set through the router (see RouterEval) and prints accuracy, quality
 * kept and cost against always-LLM, misroute rate, calibration error, the tier mix and the
 * bandit's regret curve beside the fixed policies' regret. `train` fits the classifier on the set
 * and writes the model file (`ROUTER_MODEL` loads it on every node), or stores it as one tenant's
 * own classifier in Postgres (`--tenant`, needs `DATABASE_URL`, migrated).
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { TenantId } from "@tessera/domain/Ids"
import * as Database from "@tessera/runtime/Database"
import * as Router from "@tessera/runtime/Router"
import type * as RouterClassifier from "@tessera/runtime/RouterClassifier"
import * as RouterEval from "@tessera/runtime/RouterEval"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"

/** A command-line problem: the message says what and where. */
export class RouterCommandError extends Data.TaggedError("RouterCommandError")<{ readonly message: string }> {}

const percent = (x: number) => `${(x * 100).toFixed(1)} %`

/** The report as text (one figure a line, then the regret curve). */
export const format = (file: string, report: RouterEval.Report, trained: string): string =>
  [
    `router eval ${file}: ${report.queries} queries, classifier ${trained}`,
    `  accuracy (chosen = cheapest acceptable tier)  ${percent(report.accuracy)}`,
    `  quality kept vs always-LLM                    ${percent(report.qualityKept)} (first try ${percent(report.firstTryQualityKept)})`,
    `  cost vs always-LLM                            ${percent(report.costRatio)}`,
    `  misroute rate (decided tier failed)           ${percent(report.misrouteRate)} (over-routed ${percent(report.overrouteRate)})`,
    `  expected calibration error                    ${report.ece.toFixed(3)}`,
    `  tiers                                         SLM_A ${percent(report.tierShare.SLM_A)}, SLM_B ${percent(report.tierShare.SLM_B)}, LLM ${percent(report.tierShare.LLM)}`,
    `  bandit regret (cumulative, replayed in order) ${report.regret.map((r) => `${r.at}:${r.cumulative.toFixed(2)}`).join(" ")}`,
    `  fixed policies: always-LLM regret ${report.baselines.alwaysLlm.regret.toFixed(2)}; SLM_A-first with escalation regret ` +
    `${report.baselines.cheapestFirst.regret.toFixed(2)}, cost ${percent(report.baselines.cheapestFirst.costRatio)}`
  ].join("\n")

const option = (args: ReadonlyArray<string>, name: string): string | undefined => {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1] : undefined
}

const readQueries = (file: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const text = yield* fs.readFileString(file).pipe(Effect.mapError((e) => new RouterCommandError({ message: `cannot read ${file}: ${e.message}` })))
    return yield* Either.mapLeft(RouterEval.parse(text, file), (message) => new RouterCommandError({ message }))
  })

const evaluate = (file: string, modelFile: string | undefined) =>
  Effect.gen(function*() {
    const queries = yield* readQueries(file)
    let model: RouterClassifier.Model | undefined
    if (modelFile !== undefined) {
      const fs = yield* FileSystem.FileSystem
      const json = yield* fs.readFileString(modelFile).pipe(Effect.mapError((e) => new RouterCommandError({ message: `cannot read ${modelFile}: ${e.message}` })))
      model = yield* Either.mapLeft(Router.readModel(json), (why) => new RouterCommandError({ message: `${modelFile}: ${why}` }))
    }
    const report = RouterEval.evaluate(queries, {}, model)
    yield* Console.log(format(file, report, model === undefined ? "5-fold cross-validated" : `from ${modelFile}`))
  })

const trainToFile = (file: string, out: string) =>
  Effect.gen(function*() {
    const queries = yield* readQueries(file)
    const model = RouterEval.trainOn(queries)
    const fs = yield* FileSystem.FileSystem
    yield* fs.writeFileString(out, JSON.stringify(model, null, 2)).pipe(
      Effect.mapError((e) => new RouterCommandError({ message: `cannot write ${out}: ${e.message}` }))
    )
    yield* Console.log(`router train: ${queries.length} queries, temperature ${model.temperature.toFixed(2)}; model written to ${out} (set ROUTER_MODEL=${out})`)
  })

const trainForTenant = (file: string, tenant: string) =>
  Effect.gen(function*() {
    const tenantId = yield* Schema.decodeUnknown(TenantId)(tenant).pipe(
      Effect.mapError(() => new RouterCommandError({ message: `--tenant ${JSON.stringify(tenant)} is not a tenant id` }))
    )
    const queries = yield* readQueries(file)
    const model = RouterEval.trainOn(queries)
    const router = yield* Router.Router
    yield* router.saveClassifier(tenantId, model)
    yield* Console.log(`router train: ${queries.length} queries, temperature ${model.temperature.toFixed(2)}; stored as tenant ${tenantId}'s classifier`)
  }).pipe(Effect.provide(Router.layerConfig().pipe(Layer.provide(Database.Database.Default), Layer.provide(Database.layerConfig))))

const usage = "usage: tessera router eval <queries.jsonl> [--model model.json] | tessera router train <queries.jsonl> [--out model.json] [--tenant <id>]"

/** The `router` command. */
export const command = (args: ReadonlyArray<string>): Effect.Effect<void, unknown> => {
  const [sub, file] = args
  if (file === undefined || file.startsWith("--")) return Effect.fail(new RouterCommandError({ message: usage }))
  switch (sub) {
    case "eval":
      return evaluate(file, option(args, "--model")).pipe(Effect.provide(NodeContext.layer))
    case "train": {
      const tenant = option(args, "--tenant")
      return (tenant === undefined ? trainToFile(file, option(args, "--out") ?? "router-model.json") : trainForTenant(file, tenant)).pipe(
        Effect.provide(NodeContext.layer)
      )
    }
    default:
      return Effect.fail(new RouterCommandError({ message: usage }))
  }
}
