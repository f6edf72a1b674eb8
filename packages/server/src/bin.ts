#!/usr/bin/env node
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Effect from "effect/Effect"
import * as Config from "effect/Config"
import * as Cli from "./Cli.js"

const logLevel = Config.logLevel("LOG_LEVEL").pipe(Config.withDefault(LogLevel.Info))

Effect.flatMap(Effect.orDie(logLevel), (level) =>
  Cli.run(process.argv.slice(2)).pipe(Logger.withMinimumLogLevel(level))).pipe(
    NodeRuntime.runMain({ disableErrorReporting: true })
  )
