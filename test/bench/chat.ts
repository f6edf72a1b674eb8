/**
 * Chat benchmark: chat turns through the HTTP API against the raw limit of the same machine.
 *
 *   npm run bench:chat            (BENCH_SECONDS=10 per figure by default)
 *
 * One process, the live clock, a fresh migrated database (`TEST_DATABASE_URL`, default
 * postgres://postgres@127.0.0.1:5432/postgres), a one-node cluster hosting every entity, the
 * shipped workflows on the built-in `local` model, the in-process event bus with its outbox
 * relay, and the HTTP API on a free port. Closed-loop clients, one session each, post
 * `POST /v1/chat/messages` back to back (API key auth, rate limits, Session.Send, the
 * customer_support run, the wait for its answer) at 16, 64 and 256 concurrent sessions; the
 * sessions are spread over `BENCH_TENANTS` enterprise tenants so plan limits do not throttle.
 *
 * Beside it, the edge alone (`GET /v1/auth/whoami`: API key lookup, both rate buckets, the
 * edge middleware) at the same concurrency.
 *
 * Printed next to each figure, measured in the same run at the same concurrency: a bare
 * `node:http` server doing one Postgres INSERT per request (node-postgres pool of the same
 * size) — the limit — and the seed SLO (p50 100 ms, p95 500 ms).
 *
 * Environment: `BENCH_SECONDS` (default 10), `BENCH_WARMUP_SECONDS` (default 2),
 * `BENCH_CONCURRENCY` (default 16,64,256), `BENCH_TENANTS` (default 32), `BENCH_POOL_SIZE`
 * (default 20); `BENCH_SOAK_SECONDS` (default 0: none) then chats `BENCH_SOAK_SESSIONS` (64)
 * sessions for that long and prints heap and RSS every tenth of it (the live heap after a full
 * collection when node runs with `--expose-gc`).
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as HttpServer from "@effect/platform/HttpServer"
import { TenantId } from "@tessera/domain/Ids"
import { TenantEntity } from "@tessera/domain/TenantEntity"
import * as ApiKeys from "@tessera/runtime/ApiKeys"
import * as ClusterRunner from "@tessera/runtime/ClusterRunner"
import { Database, layerPg } from "@tessera/runtime/Database"
import * as Entities from "@tessera/runtime/Entities"
import * as KnowledgeStore from "@tessera/runtime/KnowledgeStore"
import * as LlmGatewayLive from "@tessera/runtime/LlmGatewayLive"
import * as LocalEmbedder from "@tessera/runtime/LocalEmbedder"
import * as MemoryEventBus from "@tessera/runtime/MemoryEventBus"
import * as Migrations from "@tessera/runtime/Migrations"
import * as OutboxRelay from "@tessera/runtime/OutboxRelay"
import * as PgVectorStore from "@tessera/runtime/PgVectorStore"
import { TestDatabaseUrl } from "@tessera/runtime/TestDatabase"
import * as ToolRegistry from "@tessera/runtime/ToolRegistry"
import * as WorkflowRegistry from "@tessera/runtime/WorkflowRegistry"
import * as Api from "@tessera/server/Api"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Redacted from "effect/Redacted"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import * as os from "node:os"
import { performance } from "node:perf_hooks"
import pg from "pg"

const settings = Config.all({
  seconds: Config.number("BENCH_SECONDS").pipe(Config.withDefault(10)),
  warmupSeconds: Config.number("BENCH_WARMUP_SECONDS").pipe(Config.withDefault(2)),
  concurrency: Config.array(Config.integer(), "BENCH_CONCURRENCY").pipe(Config.withDefault([16, 64, 256])),
  tenants: Config.integer("BENCH_TENANTS").pipe(Config.withDefault(32)),
  poolSize: Config.integer("BENCH_POOL_SIZE").pipe(Config.withDefault(20)),
  soakSeconds: Config.integer("BENCH_SOAK_SECONDS").pipe(Config.withDefault(0)),
  soakSessions: Config.integer("BENCH_SOAK_SESSIONS").pipe(Config.withDefault(64))
})

interface Figure {
  readonly ok: number
  readonly failed: number
  readonly seconds: number
  readonly latencies: Float64Array
}

const percentile = (sorted: Float64Array, p: number) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!

const format = (name: string, figure: Figure) => {
  const sorted = figure.latencies.slice().sort()
  const f = (ms: number) => `${ms.toFixed(1).padStart(7)} ms`
  return `${name.padEnd(34)} ${(figure.ok / figure.seconds).toFixed(0).padStart(6)}/s  p50 ${f(percentile(sorted, 50))}  p95 ${
    f(percentile(sorted, 95))
  }  p99 ${f(percentile(sorted, 99))}  errors ${figure.failed}`
}

/**
 * `callers` closed loops of `request(caller)` for warm-up + measured seconds; only completions in
 * the measured window count.
 */
const load = (callers: number, warmupMs: number, measureMs: number, request: (caller: number) => Promise<boolean>) =>
  Effect.promise(async (): Promise<Figure> => {
    const start = performance.now()
    const from = start + warmupMs
    const until = from + measureMs
    const latencies: Array<number> = []
    let ok = 0
    let failed = 0
    await Promise.all(Array.from({ length: callers }, async (_, caller) => {
      while (performance.now() < until) {
        const t0 = performance.now()
        const good = await request(caller).catch(() => false)
        const t1 = performance.now()
        if (t0 >= from && t1 <= until) {
          if (good) {
            ok++
            latencies.push(t1 - t0)
          } else failed++
        }
      }
    }))
    return { ok, failed, seconds: measureMs / 1000, latencies: Float64Array.from(latencies) }
  })

/** The limit: a bare node:http server that does one Postgres INSERT per request. */
const peerServer = (url: string, poolSize: number) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const pool = new pg.Pool({ connectionString: url, max: poolSize })
      await pool.query("CREATE TABLE IF NOT EXISTS bench_chat_peer (id bigserial PRIMARY KEY, body text NOT NULL)", [])
      const server = createServer((req: IncomingMessage, res: ServerResponse) => {
        const chunks: Array<Buffer> = []
        req.on("data", (c: Buffer) => chunks.push(c))
        req.on("end", () => {
          pool.query("INSERT INTO bench_chat_peer (body) VALUES ($1)", [Buffer.concat(chunks).toString("utf8")]).then(
            () => {
              res.writeHead(200, { "content-type": "application/json" })
              res.end("{\"ok\":true}")
            },
            () => {
              res.writeHead(500)
              res.end()
            }
          )
        })
      })
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
      return { server, pool, port: (server.address() as AddressInfo).port }
    }),
    ({ pool, server }) => Effect.promise(async () => {
      await new Promise((resolve) => server.close(resolve))
      await pool.end()
    })
  )

const workflows = Layer.mergeAll(
  ToolRegistry.layer,
  LlmGatewayLive.layerLocal,
  WorkflowRegistry.plans.pipe(Layer.provideMerge(WorkflowRegistry.layer({ dir: WorkflowRegistry.defaultDir })), Layer.provide(NodeContext.layer))
)

const program = Effect.gen(function*() {
  const s = yield* settings
  const { url } = yield* TestDatabaseUrl
  const server = NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })
  const node = Layer.mergeAll(Entities.layer, OutboxRelay.layer(), Api.serveOn(server), server).pipe(
    Layer.provide(workflows),
    Layer.provideMerge(MemoryEventBus.layer),
    Layer.provideMerge(KnowledgeStore.layer.pipe(Layer.provide(PgVectorStore.layer), Layer.provide(LocalEmbedder.layer))),
    Layer.provideMerge(ClusterRunner.layerSingle()),
    Layer.provideMerge(Database.Default),
    Layer.provideMerge(Layer.effectDiscard(Migrations.run).pipe(Layer.provideMerge(layerPg(Redacted.make(url), { maxConnections: s.poolSize }))))
  )
  yield* Effect.gen(function*() {
    const http = yield* HttpServer.HttpServer
    const port = http.address._tag === "TcpAddress" ? http.address.port : 0
    const tenants = yield* TenantEntity.client
    const keys: Array<string> = []
    for (let i = 0; i < s.tenants; i++) {
      const tenantId = TenantId.make(`bench_${i}`)
      yield* tenants(tenantId).Provision({ name: `Bench ${i}`, plan: "enterprise" })
      keys.push(Redacted.value((yield* ApiKeys.create(tenantId, "bench", ["read", "write"])).plainKey))
    }
    const peer = yield* peerServer(url, s.poolSize)
    const cpus = os.cpus()
    yield* Effect.log(`chat benchmark: ${cpus.length} × ${cpus[0]?.model ?? "?"}, node ${process.version}, ${s.seconds} s per figure`)
    yield* Effect.log(`seed SLO: p50 100 ms, p95 500 ms; target at 64 sessions: p50 ≤ 20 ms, p95 ≤ 100 ms`)

    const chatter = (callers: number) => {
      const sessions: Array<string | undefined> = Array.from({ length: callers }, () => undefined)
      let turn = 0
      return async (caller: number) => {
        const key = keys[caller % keys.length]!
        const body = {
          message: turn++ % 2 === 0 ? "How long do refunds take?" : "Where is my order?",
          user_id: `u_${caller}`,
          ...(sessions[caller] === undefined ? {} : { session_id: sessions[caller] })
        }
        const response = await fetch(`http://127.0.0.1:${port}/v1/chat/messages`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
          body: JSON.stringify(body)
        })
        const json: unknown = await response.json()
        if (response.status !== 200) return false
        if (typeof json === "object" && json !== null && "session_id" in json && typeof json.session_id === "string") {
          sessions[caller] = json.session_id
        }
        return true
      }
    }

    for (const callers of s.concurrency) {
      const chat = chatter(callers)
      const insert = async (caller: number) => {
        const response = await fetch(`http://127.0.0.1:${peer.port}/`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ message: "How long do refunds take?", user_id: `u_${caller}` })
        })
        await response.text()
        return response.status === 200
      }
      const whoami = async (caller: number) => {
        const response = await fetch(`http://127.0.0.1:${port}/v1/auth/whoami`, {
          headers: { authorization: `Bearer ${keys[caller % keys.length]!}` }
        })
        await response.text()
        return response.status === 200
      }
      const rss0 = process.memoryUsage().rss
      const tessera = yield* load(callers, s.warmupSeconds * 1000, s.seconds * 1000, chat)
      const rss1 = process.memoryUsage().rss
      const edge = yield* load(callers, s.warmupSeconds * 1000, s.seconds * 1000, whoami)
      const limit = yield* load(callers, s.warmupSeconds * 1000, s.seconds * 1000, insert)
      const ratio = (tessera.ok / limit.ok).toFixed(3)
      yield* Effect.log(
        [
          `— ${callers} concurrent sessions —`,
          format("Tessera chat turn (HTTP)", tessera),
          format("edge alone: auth + rate limit", edge),
          format("limit: node:http + 1 INSERT", limit),
          `chat throughput ${ratio} × the limit; RSS ${(rss0 / 2 ** 20).toFixed(0)} → ${(rss1 / 2 ** 20).toFixed(0)} MiB over the chat figure`
        ].join("\n")
      )
    }

    if (s.soakSeconds > 0) {
      // Memory over a long run: heap and RSS sampled every tenth of it while the sessions chat.
      const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(0)
      const samples: Array<string> = []
      // With `node --expose-gc` the heap is sampled after a full collection: what is still alive.
      const collect = (globalThis as { readonly gc?: () => void }).gc
      const sample = (at: number) => {
        collect?.()
        const m = process.memoryUsage()
        samples.push(`  ${String(at).padStart(5)} s   heap ${mib(m.heapUsed).padStart(5)} MiB   rss ${mib(m.rss).padStart(5)} MiB`)
      }
      const every = Math.max(1, Math.round(s.soakSeconds / 10))
      const sampler = yield* Effect.forkScoped(Effect.forEach(
        Array.from({ length: 10 }, (_, i) => (i + 1) * every),
        (at) => Effect.delay(Effect.sync(() => sample(at)), `${every} seconds`),
        { discard: true }
      ))
      sample(0)
      const soak = yield* load(s.soakSessions, 0, s.soakSeconds * 1000, chatter(s.soakSessions))
      yield* Fiber.interrupt(sampler)
      yield* Effect.log([`— soak: ${s.soakSessions} sessions for ${s.soakSeconds} s —`, format("Tessera chat turn (HTTP)", soak), ...samples].join("\n"))
    }
  }).pipe(Effect.provide(node), Effect.scoped)
}).pipe(
  Effect.provide(TestDatabaseUrl.Default),
  Logger.withMinimumLogLevel(LogLevel.Info)
)

NodeRuntime.runMain(program.pipe(Effect.provide(Logger.pretty)))
