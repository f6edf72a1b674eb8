/**
 * The README's first command, run as a newcomer would: in a fresh copy of the repository, on
 * the embedded defaults, it installs, starts, answers /readyz, and stops cleanly on Ctrl-C.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import { execFileSync, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { freePort } from "../fixtures/Ports.js"

const root = Path.resolve(import.meta.dirname, "../..")

/** The first shell block under "## Start". */
const firstCommand = (): string => {
  const readme = Fs.readFileSync(Path.join(root, "README.md"), "utf8")
  const section = readme.split(/^## Start$/m)[1] ?? ""
  const block = /```sh\n([^`]+?)\n```/.exec(section)
  if (block?.[1] === undefined) throw new Error("README.md has no ```sh block under '## Start'")
  return block[1].trim()
}

/** A copy of what git would check out (tracked and new, unignored files), readable by the embedded Postgres user. */
const freshCopy = Effect.acquireRelease(
  Effect.sync(() => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "tessera-readme-"))
    Fs.chmodSync(dir, 0o755)
    const files = execFileSync("git", ["ls-files", "-co", "--exclude-standard", "-z"], { cwd: root, encoding: "utf8" })
      .split("\0")
      .filter((file) => file.length > 0 && Fs.existsSync(Path.join(root, file)))
    for (const file of files) {
      Fs.mkdirSync(Path.dirname(Path.join(dir, file)), { recursive: true, mode: 0o755 })
      Fs.copyFileSync(Path.join(root, file), Path.join(dir, file))
    }
    return dir
  }),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

const cleanEnv = (): NodeJS.ProcessEnv =>
  Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("npm_") && key !== "DATABASE_URL" && key !== "NATS_URL"))

describe("README", () => {
  it.live("the first command installs and starts the product on its embedded defaults", () =>
    Effect.gen(function*() {
      const command = firstCommand()
      assert.match(command, /npm start/)
      const dir = yield* freshCopy
      const port = yield* freePort
      let output = ""
      const child = yield* Effect.acquireRelease(
        Effect.sync(() =>
          spawn("bash", ["-c", command], {
            cwd: dir,
            env: { ...cleanEnv(), PORT: String(port) },
            detached: true,
            stdio: ["ignore", "pipe", "pipe"]
          })
        ),
        (child) =>
          Effect.sync(() => {
            if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
              process.kill(-child.pid, "SIGKILL")
            }
          }).pipe(Effect.ignore)
      )
      child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()))
      child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()))
      const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))

      const ready = yield* Effect.tryPromise(() => fetch(`http://127.0.0.1:${port}/readyz`)).pipe(
        Effect.flatMap((response) =>
          response.status === 200 ? Effect.promise(() => response.json()) : Effect.fail(`status ${response.status}`)
        ),
        Effect.retry(Schedule.spaced("500 millis").pipe(Schedule.upTo("240 seconds"))),
        Effect.tapError(() => Effect.sync(() => console.error(output)))
      )
      assert.deepInclude(ready, { status: "ready" })

      const demo: unknown = JSON.parse(Fs.readFileSync(Path.join(dir, ".tessera", "demo.json"), "utf8"))
      assert.deepInclude(demo, { tenantId: "demo", baseUrl: `http://localhost:${port}` })
      assert.include(output, "API key")

      // Ctrl-C reaches the whole foreground process group; everything stops, Postgres included.
      process.kill(-child.pid!, "SIGINT")
      yield* Effect.promise(() => exited).pipe(Effect.timeout("30 seconds"))
      const postmaster = Path.join(dir, ".tessera", "pg", "postmaster.pid")
      assert.isFalse(Fs.existsSync(postmaster), "the embedded Postgres stopped")
    }).pipe(Effect.scoped), { timeout: 300_000 })
})
