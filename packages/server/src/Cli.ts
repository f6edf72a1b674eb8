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
import * as Node from "./Node.js"

export const help = `tessera — multi-tenant AI agent runtime

Usage: tessera <command>

Commands:
  dev       one node on the embedded defaults (embedded Postgres in .tessera/pg, in-process
            events), provisions the demo tenant and writes .tessera/demo.json
  runner    a cluster node: DATABASE_URL (required), NATS_URL, RUNNER_HOST, RUNNER_PORT, PORT
  migrate   apply the database migrations to DATABASE_URL and exit
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

const commands: Record<string, Effect.Effect<void, unknown>> = {
  dev: Layer.launch(Node.dev),
  runner: Layer.launch(Node.runner),
  migrate: Effect.asVoid(Node.migrate),
  help: Console.log(help)
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
  return Effect.flatMap(logLevel, (level) => Logger.withMinimumLogLevel(command, level)).pipe(
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
