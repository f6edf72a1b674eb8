#!/usr/bin/env node
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cli from "./Cli.js"

Cli.run(process.argv.slice(2)).pipe(NodeRuntime.runMain({ disableErrorReporting: true }))
