import * as Reactivity from "@effect/experimental/Reactivity"
import { assert, describe, it } from "@effect/vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Effect from "effect/Effect"
import type * as Redacted from "effect/Redacted"
import * as Fs from "node:fs/promises"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import * as EmbeddedPostgres from "../src/EmbeddedPostgres.js"

const tempDir = Effect.acquireRelease(
  Effect.promise(() => Fs.mkdtemp(Path.join(Os.tmpdir(), "tessera-embedded-pg-"))),
  (dir) => Effect.promise(() => Fs.rm(dir, { recursive: true, force: true }))
)

const query = <A extends object>(url: Redacted.Redacted, statement: string) =>
  Effect.scoped(
    Effect.flatMap(PgClient.make({ url, maxConnections: 1 }), (sql) => sql.unsafe<A>(statement))
  ).pipe(Effect.provide(Reactivity.layer))

/** "refused" once nothing listens on 127.0.0.1:port. */
const connectTo = (port: number) =>
  Effect.async<"connected" | "refused">((resume) => {
    const socket = Net.connect({ port, host: "127.0.0.1" })
    socket.once("connect", () => {
      socket.destroy()
      resume(Effect.succeed("connected"))
    })
    socket.once("error", () => resume(Effect.succeed("refused")))
  })

const listenOn = Effect.acquireRelease(
  Effect.async<Net.Server>((resume) => {
    const server = Net.createServer()
    server.listen({ port: 0, host: "127.0.0.1" }, () => resume(Effect.succeed(server)))
  }),
  (server) =>
    Effect.async<void>((resume) => {
      server.close(() => resume(Effect.void))
    })
)

describe("EmbeddedPostgres", () => {
  it.scoped("starts, keeps data across restarts, and stops the server when the scope closes", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir

      const first = yield* Effect.scoped(Effect.gen(function*() {
        const server = yield* EmbeddedPostgres.make({ dataDir })
        const rows = yield* query<{ one: number }>(server.url, "SELECT 1 AS one")
        assert.deepStrictEqual(rows, [{ one: 1 }])
        const db = yield* query<{ db: string }>(server.url, "SELECT current_database() AS db")
        assert.deepStrictEqual(db, [{ db: "tessera" }])
        yield* query(server.url, "CREATE TABLE survivors (name text)")
        yield* query(server.url, "INSERT INTO survivors VALUES ('first start')")
        return server
      }))
      assert.strictEqual(yield* connectTo(first.port), "refused")
      assert.isFalse(yield* Effect.promise(() => Fs.access(Path.join(dataDir, "postmaster.pid")).then(() => true, () => false)))

      const second = yield* Effect.scoped(Effect.gen(function*() {
        const server = yield* EmbeddedPostgres.make({ dataDir })
        const rows = yield* query<{ name: string }>(server.url, "SELECT name FROM survivors")
        assert.deepStrictEqual(rows, [{ name: "first start" }])
        return server
      }))
      assert.strictEqual(yield* connectTo(second.port), "refused")
      assert.throws(() => process.kill(second.pid, 0))
    }))

  it.scoped("recovers from a crash that left postmaster.pid behind; a taken configured port is a typed error", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir

      const crashed = yield* Effect.scoped(Effect.gen(function*() {
        const server = yield* EmbeddedPostgres.make({ dataDir })
        yield* query(server.url, "CREATE TABLE t (x int)")
        process.kill(server.pid, "SIGKILL")
        return server
      }))
      const stale = yield* Effect.promise(() => Fs.readFile(Path.join(dataDir, "postmaster.pid"), "utf8"))
      assert.strictEqual(stale.split("\n")[0], String(crashed.pid))

      yield* Effect.scoped(Effect.gen(function*() {
        const server = yield* EmbeddedPostgres.make({ dataDir })
        const rows = yield* query<{ n: string }>(server.url, "SELECT count(*) AS n FROM t")
        assert.deepStrictEqual(rows, [{ n: "0" }])
      }))

      const taken = yield* listenOn
      const address = taken.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      const error = yield* Effect.flip(Effect.scoped(EmbeddedPostgres.make({ dataDir, port })))
      assert.strictEqual(error._tag, "EmbeddedPostgresError")
      assert.strictEqual(error.code, "port_in_use")
      assert.include(error.message, `port ${port}`)
    }))

  it.scoped("refuses a data directory made by another major version", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir
      yield* Effect.promise(() => Fs.writeFile(Path.join(dataDir, "PG_VERSION"), "16\n"))
      const error = yield* Effect.flip(Effect.scoped(EmbeddedPostgres.make({ dataDir })))
      assert.strictEqual(error.code, "version_mismatch")
      assert.match(error.message, /belongs to PostgreSQL 16, this is 17/)
    }))
})
