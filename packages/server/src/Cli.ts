/**
 * The `tessera` command. Failures end the process with one line on stderr and a non-zero exit
 * code: a configuration error names the variable, an unreachable database says so.
 */
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Node from "./Node.js"
import * as Router from "./Router.js"
import * as Workflows from "./Workflows.js"
import { TenantId } from "@tessera/domain/Ids"
import { SearchMode } from "@tessera/domain/Knowledge"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"

export const help = `tessera — multi-tenant AI agent runtime

Usage: tessera <command>

Commands:
  dev       one node on the embedded defaults (embedded Postgres in .tessera/pg, in-process
            events), provisions the demo tenant and writes .tessera/demo.json
  runner    a cluster node: DATABASE_URL (required), NATS_URL, RUNNER_HOST, RUNNER_PORT, PORT
  migrate   apply the database migrations to DATABASE_URL and exit
  knowledge eval <questions.jsonl> --tenant <id> [--mode hybrid|full_text|vector|all]
            recall@1, recall@5 and MRR of a tenant's knowledge base on a question set
            (DATABASE_URL, or the embedded Postgres of a stopped \`tessera dev\`)
  router eval <queries.jsonl> [--model model.json]
            replay labelled queries through the tier router: accuracy, quality kept and cost
            against always-LLM, misroute rate, calibration error, bandit regret curve
  router train <queries.jsonl> [--out model.json] [--tenant <id>]
            fit the router's classifier; write the model file (ROUTER_MODEL) or store it as a
            tenant's own (DATABASE_URL)
  workflows validate <file…>
            check workflow files (schema, steps, tools, sub-workflows, expressions, cycles,
            reachability); prints file:line:column for each problem, exit code 1 if any
  help      this text

Environment: see the README.`

const describeConfig = (error: ConfigError.ConfigError): string => {
  switch (error._op) {
    case "And":
      return `${describeConfig(error.left)}; ${describeConfig(error.right)}`
    case "Or":
      return describeConfig(error.left)
    case "MissingData":
      return `${error.path.join(".")} is not set`
    case "InvalidData":
      return `${error.path.join(".")} ${error.message}`
    default:
      return String(error)
  }
}

/** The cause of a failure as one line a person can act on. */
export const describe = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  if (ConfigError.isConfigError(error)) return `configuration: ${describeConfig(error)}`
  if (error instanceof Error) {
    const inner = error.cause instanceof Error && error.cause.message !== error.message ? `: ${error.cause.message}` : ""
    return `${error.message}${inner}`
  }
  return String(error)
}

const logLevel = Config.logLevel("LOG_LEVEL").pipe(Config.withDefault(LogLevel.Info))

const usage = (message: string) => Effect.fail(new Error(`${message}\n\n${help}`))

const option = (args: ReadonlyArray<string>, name: string): string | undefined => {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1] : undefined
}

const knowledge = (args: ReadonlyArray<string>): Effect.Effect<void, unknown> => {
  const [sub, file] = args
  const tenant = option(args, "--tenant")
  const mode = option(args, "--mode") ?? "all"
  if (sub !== "eval" || file === undefined || file.startsWith("--")) return usage("usage: tessera knowledge eval <questions.jsonl> --tenant <id>")
  if (tenant === undefined) return usage("--tenant <id> is required")
  const tenantId = Schema.decodeUnknownEither(TenantId)(tenant)
  if (tenantId._tag === "Left") return usage(`--tenant ${JSON.stringify(tenant)} is not a tenant id`)
  const one = Schema.decodeUnknownOption(SearchMode)(mode)
  const modes = mode === "all" ? (["full_text", "vector", "hybrid"] as const) : Option.isSome(one) ? [one.value] : undefined
  if (modes === undefined) return usage(`--mode ${JSON.stringify(mode)} is not hybrid, full_text, vector or all`)
  return Node.knowledgeEval(file, tenantId.right, modes)
}

const workflows = (args: ReadonlyArray<string>): Effect.Effect<void, unknown> => {
  const [sub, ...files] = args
  if (sub !== "validate" || files.length === 0) return usage("usage: tessera workflows validate <file…>")
  return Workflows.validate(files).pipe(
    // The diagnostics are printed already; the error line only sums them up.
    Effect.catchTag("WorkflowInvalid", (e) => Effect.fail(new Error(`${e.diagnostics.length} problem(s) found`))),
    Effect.provide(NodeContext.layer)
  )
}

const commands: Record<string, (args: ReadonlyArray<string>) => Effect.Effect<void, unknown>> = {
  dev: () => Layer.launch(Node.dev),
  runner: () => Layer.launch(Node.runner),
  migrate: () => Effect.asVoid(Node.migrate),
  knowledge,
  router: Router.command,
  workflows,
  help: () => Console.log(help)
}

export const run = (args: ReadonlyArray<string>): Effect.Effect<void> => {
  const name = args[0] === undefined || args[0] === "--help" || args[0] === "-h" ? "help" : args[0]
  const command = commands[name]
  if (command === undefined) {
    return Effect.zipRight(
      Console.error(`tessera: unknown command "${name}"\n\n${help}`),
      Effect.sync(() => {
        process.exitCode = 2
      })
    )
  }
  return Effect.flatMap(logLevel, (level) => Logger.withMinimumLogLevel(command(args.slice(1)), level)).pipe(
    Effect.catchAllCause((cause) =>
      Cause.isInterruptedOnly(cause)
        ? Effect.void
        : Effect.zipRight(
          Console.error(`tessera ${name}: ${describe(cause)}`),
          Effect.sync(() => {
            process.exitCode = 1
          })
        )
    )
  )
}
