/**
 * Workflow benchmark: durable runs of a three-step workflow (three no-op tool steps, each
 * journaled with its events) against the raw limit of the same Postgres.
 *
 *   npm run bench:workflows            (BENCH_SECONDS=5 by default)
 *
 * One process, the live clock, a fresh migrated database (`TEST_DATABASE_URL`, default
 * postgres://postgres@127.0.0.1:5432/postgres), a one-node cluster on SQL storage
 * (`ClusterRunner.layerSingle`) with the Tenant and Run entities, the real ToolRegistry (plus the
 * no-op tool) and the WorkflowExecutor.
 *
 * A run: INSERT the requested run row, Run.Start carrying it (volatile message; the host executes
 * it without reading it back, as after Session.Send), three tool steps each journaled in one
 * statement with its outbox events (the first folds in `started`, the last the completion), until
 * `agent_runs.status = 'completed'`.
 * The raw limit, measured in the same run at the same concurrency: three sequential single-row
 * autocommit INSERTs per run through a plain `pg` pool of the same size. Beside each figure, per
 * run: this process's CPU time (all its threads), the time its event loop was busy — the loop's
 * share is what bounds one Node runner; above the CPU time it means the loop waited for a core —
 * and the CPU time of the database's Postgres backends (read from `/proc`, so only when Postgres
 * runs on this machine; "n/a" otherwise).
 *
 * Environment:
 * - `BENCH_SECONDS` (default 5), `BENCH_WARMUP_SECONDS` (default 1)
 * - `BENCH_CONCURRENCY` (default 32): runs in flight
 * - `BENCH_POOL_SIZE` (default 20): the Tessera pool and the raw `pg` pool
 * - `BENCH_TENANTS` (default 8): enterprise tenants the runs spread over
 * - `BENCH_POLL_MS` (default 5): how often one batched query checks the runs in flight for completion
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { RunId, TenantId } from "@tessera/domain/Ids"
import * as RunEntity from "@tessera/domain/RunEntity"
import { TenantEntity } from "@tessera/domain/TenantEntity"
import * as Bulkhead from "@tessera/runtime/Bulkhead"
import * as CircuitBreaker from "@tessera/runtime/CircuitBreaker"
import * as ClusterRunner from "@tessera/runtime/ClusterRunner"
import * as KnowledgeStore from "@tessera/runtime/KnowledgeStore"
import * as LocalEmbedder from "@tessera/runtime/LocalEmbedder"
import * as PgVectorStore from "@tessera/runtime/PgVectorStore"
import * as RunEntityLive from "@tessera/runtime/RunEntity"
import * as SandboxPayments from "@tessera/runtime/SandboxPayments"
import * as TenantEntityLive from "@tessera/runtime/TenantEntity"
import { TestDatabaseUrl } from "@tessera/runtime/TestDatabase"
import * as Tool from "@tessera/runtime/Tool"
import * as ToolRegistry from "@tessera/runtime/ToolRegistry"
import type * as WorkflowPlan from "@tessera/runtime/WorkflowPlan"
import * as WorkflowPlans from "@tessera/runtime/WorkflowPlans"
import * as Config from "effect/Config"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Schema from "effect/Schema"
import * as fs from "node:fs"
import * as os from "node:os"
import { performance } from "node:perf_hooks"
import pg from "pg"
import { fmt, layerDatabase, percentile } from "./Harness.js"

const settings = Config.all({
  seconds: Config.number("BENCH_SECONDS").pipe(Config.withDefault(5)),
  warmupSeconds: Config.number("BENCH_WARMUP_SECONDS").pipe(Config.withDefault(1)),
  concurrency: Config.integer("BENCH_CONCURRENCY").pipe(Config.withDefault(32)),
  poolSize: Config.integer("BENCH_POOL_SIZE").pipe(Config.withDefault(20)),
  tenants: Config.integer("BENCH_TENANTS").pipe(Config.withDefault(8)),
  pollMs: Config.integer("BENCH_POLL_MS").pipe(Config.withDefault(5))
})
type Settings = Config.Config.Success<typeof settings>

// ---------------------------------------------------------------------------------------------
// The workflow: three no-op tool steps.

const Noop = Tool.make({
  name: "bench.noop",
  description: "Does nothing and says so.",
  input: Schema.Struct({ step: Schema.Int }),
  output: Schema.Struct({ step: Schema.Int }),
  timeout: "5 seconds",
  retry: Tool.noRetry,
  idempotent: true,
  transactional: false,
  run: (input) => Effect.succeed({ step: input.step })
})

const noopStep = (n: number, next: string | undefined): WorkflowPlan.Step => ({
  id: `s${n}`,
  kind: { _tag: "tool", call: { tool: "bench.noop", input: () => Either.right({ step: n }) } },
  next,
  timeout: undefined,
  retry: undefined,
  onError: { _tag: "Fail" },
  compensate: undefined
})

const threeSteps: WorkflowPlan.Plan = {
  name: "bench_three_steps",
  version: "1",
  start: "s1",
  steps: new Map([["s1", noopStep(1, "s2")], ["s2", noopStep(2, "s3")], ["s3", noopStep(3, undefined)]]),
  budgets: { wallMs: undefined, tokens: undefined, costUsd: undefined }
}

// ---------------------------------------------------------------------------------------------
// Measurement

interface Result {
  readonly ok: number
  readonly failed: number
  readonly elapsedMs: number
  readonly latencies: ReadonlyArray<number>
  readonly firstFailure: string | undefined
  /** This process's CPU time (user + system, all its threads) over the measurement, in ms. */
  readonly cpuMs: number
  /** Time the event loop (the main thread) was busy over the measurement, in ms. */
  readonly loopMs: number
  /** CPU time of the benchmark database's Postgres backends over the measurement, in ms, if readable. */
  readonly postgresMs: number | undefined
}

const cpuMillis = (usage: NodeJS.CpuUsage) => (usage.user + usage.system) / 1000

/** Linux's clock tick for `/proc/<pid>/stat` times (USER_HZ, 100 on every mainstream kernel). */
const ticksPerSecond = 100

/**
 * CPU time so far (user + system, ms) of each backend serving this database, by pid, from
 * `/proc/<pid>/stat`; none when Postgres is not on this machine.
 */
const postgresCpu = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const backends = yield* sql<{ pid: number }>`SELECT pid FROM pg_stat_activity WHERE datname = current_database()`
  const times = new Map<number, number>()
  for (const { pid } of backends) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      times.set(pid, (Number(fields[11]) + Number(fields[12])) * 1000 / ticksPerSecond)
    } catch {
      return undefined
    }
  }
  return times
}).pipe(Effect.orDie)

/** CPU ms the backends spent between two readings (a backend that started in between counts from zero). */
const postgresSpent = (before: ReadonlyMap<number, number> | undefined, after: ReadonlyMap<number, number> | undefined) => {
  if (before === undefined || after === undefined) return undefined
  let spent = 0
  for (const [pid, ms] of after) spent += ms - (before.get(pid) ?? 0)
  return spent
}

const measure = <E, R>(callers: number, seconds: number, op: (caller: number) => Effect.Effect<void, E, R>) =>
  Effect.flatMap(postgresCpu, (postgresBefore) => {
    const latencies: Array<number> = []
    let ok = 0
    let failed = 0
    let firstFailure: string | undefined
    const start = performance.now()
    const cpu = process.cpuUsage()
    const loop = performance.eventLoopUtilization()
    const deadline = start + seconds * 1000
    const caller = (c: number) =>
      Effect.gen(function*() {
        while (performance.now() < deadline) {
          const t0 = performance.now()
          const exit = yield* Effect.either(op(c))
          latencies.push(performance.now() - t0)
          if (Either.isRight(exit)) ok++
          else {
            failed++
            firstFailure ??= String(exit.left)
          }
        }
      })
    return Effect.forEach(Array.from({ length: callers }, (_, c) => c), caller, { concurrency: "unbounded", discard: true }).pipe(
      Effect.zipRight(postgresCpu),
      Effect.map((postgresAfter): Result => ({
        ok,
        failed,
        elapsedMs: performance.now() - start,
        latencies: latencies.sort((a, b) => a - b),
        firstFailure,
        cpuMs: cpuMillis(process.cpuUsage(cpu)),
        loopMs: performance.eventLoopUtilization(loop).active,
        postgresMs: postgresSpent(postgresBefore, postgresAfter)
      }))
    )
  })

const bench = <E, R>(s: Settings, label: string, op: (caller: number) => Effect.Effect<void, E, R>) =>
  Effect.gen(function*() {
    process.stdout.write(`  measuring ${label} (${s.concurrency} concurrent)…`)
    if (s.warmupSeconds > 0) yield* measure(s.concurrency, s.warmupSeconds, op)
    const r = yield* measure(s.concurrency, s.seconds, op)
    process.stdout.write(` ${r.ok} runs, ${r.failed} failed\n`)
    if (r.firstFailure !== undefined) console.log(`    first failure: ${r.firstFailure}`)
    return r
  })

// ---------------------------------------------------------------------------------------------
// Layers

const layerWorkflows = Layer.mergeAll(
  ToolRegistry.layerWith([Noop]).pipe(
    Layer.provide([SandboxPayments.layer, FetchHttpClient.layer, CircuitBreaker.layer, Bulkhead.layerWith({ ...Bulkhead.defaults, perTool: 1024, perTenant: 1024 })]),
    Layer.provide(KnowledgeStore.layer),
    Layer.provide(PgVectorStore.layer),
    Layer.provide(LocalEmbedder.layer)
  ),
  WorkflowPlans.layerStatic([threeSteps])
).pipe(Layer.orDie)

const layerBench = (poolSize: number) =>
  Layer.mergeAll(TenantEntityLive.layer, RunEntityLive.layer).pipe(
    Layer.provideMerge(layerWorkflows),
    Layer.provideMerge(ClusterRunner.layerSingle()),
    Layer.provideMerge(layerDatabase(poolSize))
  )

// ---------------------------------------------------------------------------------------------

const program = (s: Settings) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const { url } = yield* TestDatabaseUrl
    const pgVersion = yield* sql<{ server_version: string }>`SHOW server_version`
    console.log("Tessera workflow benchmark")
    console.log(
      `  node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? "?"}), ` +
        `load average ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}, Postgres ${pgVersion[0]?.server_version ?? "?"}`
    )
    console.log(`  ${s.seconds} s measured after ${s.warmupSeconds} s warm-up; ${s.concurrency} runs in flight; pools of ${s.poolSize}`)

    const tenants = yield* TenantEntity.client
    const tenantIds = Array.from({ length: s.tenants }, (_, i) => TenantId.make(`bw_${i}`))
    yield* Effect.forEach(tenantIds, (id) => tenants(id).Provision({ name: `Bench ${id}`, plan: "enterprise" }), { discard: true })
    yield* sql`CREATE TABLE bench_raw (id bigserial PRIMARY KEY, run integer NOT NULL, step integer NOT NULL)`

    // Raw limit: three sequential single-row INSERTs (autocommit) per run through `pg`.
    const pool = yield* Effect.acquireRelease(
      Effect.sync(() => new pg.Pool({ connectionString: url, max: s.poolSize })),
      (p) => Effect.promise(() => p.end())
    )
    let rawRun = 0
    const rawOnce = () =>
      Effect.tryPromise(async () => {
        const run = rawRun++
        for (let step = 1; step <= 3; step++) await pool.query("INSERT INTO bench_raw (run, step) VALUES ($1, $2)", [run, step])
      })
    const raw = yield* bench(s, "raw: 3 sequential INSERTs per run via pg", rawOnce)

    // Durable runs. One poller batches the completion checks of all callers.
    const waiting = new Map<string, { readonly tenantId: string; readonly done: Deferred.Deferred<string> }>()
    const pollMs = s.pollMs
    const poll = Effect.gen(function*() {
      if (waiting.size > 0) {
        const keys = [...waiting.keys()]
        const tenantsWaiting = [...new Set(keys.map((k) => waiting.get(k)!.tenantId))]
        const found = yield* sql<{ id: string; status: string }>`SELECT id, status FROM agent_runs
          WHERE tenant_id IN ${sql.in(tenantsWaiting)} AND id IN ${sql.in(keys)}
            AND status IN ('completed', 'failed', 'cancelled', 'compensated')`
        for (const row of found) {
          const entry = waiting.get(row.id)
          if (entry !== undefined) {
            waiting.delete(row.id)
            yield* Deferred.succeed(entry.done, row.status)
          }
        }
      }
      yield* Effect.sleep(pollMs)
    }).pipe(Effect.forever)
    const poller = yield* Effect.forkScoped(poll)
    const runs = yield* RunEntity.handles
    const requested = new RunEntity.RequestedRun({ workflow: threeSteps.name, input: {}, sessionId: null, userId: null })
    let seq = 0
    const runOnce = (c: number) =>
      Effect.gen(function*() {
        const tenantId = tenantIds[c % tenantIds.length]!
        const id = RunId.make(`bench_${c}_${seq++}`)
        yield* sql`INSERT INTO agent_runs (tenant_id, id, workflow, status, input)
          VALUES (${tenantId}, ${id}, ${threeSteps.name}, 'requested', '{}')`
        const done = yield* Deferred.make<string>()
        waiting.set(id, { tenantId, done })
        yield* runs(tenantId, id).Start(requested)
        const status = yield* Deferred.await(done)
        if (status !== "completed") return yield* Effect.fail(`run ${id} ended ${status}`)
      })
    const durable = yield* bench(s, "durable 3-step runs", runOnce)
    yield* Fiber.interrupt(poller)

    const steps = yield* sql<{ n: string }>`SELECT count(*) AS n FROM run_steps`
    const events = yield* sql<{ n: string }>`SELECT count(*) AS n FROM outbox WHERE subject LIKE 'tool.call.%'`
    const completed = yield* sql<{ n: string }>`SELECT count(*) AS n FROM agent_runs WHERE status = 'completed'`

    const row = (label: string, r: Result) => {
      const perSecond = r.ok / (r.elapsedMs / 1000)
      return `  ${label.padEnd(44)}${fmt(perSecond).padStart(10)}${fmt(percentile(r.latencies, 0.5), 2).padStart(10)}` +
        `${fmt(percentile(r.latencies, 0.95), 2).padStart(10)}${fmt(percentile(r.latencies, 0.99), 2).padStart(10)}` +
        `${fmt(r.cpuMs / r.ok, 3).padStart(10)}${fmt(r.loopMs / r.ok, 3).padStart(10)}` +
        `${(r.postgresMs === undefined ? "n/a" : fmt(r.postgresMs / r.ok, 3)).padStart(10)}`
    }
    console.log("")
    console.log(`  ${"figure".padEnd(44)}${"runs/s".padStart(10)}${"p50 ms".padStart(10)}${"p95 ms".padStart(10)}${"p99 ms".padStart(10)}${"CPU ms".padStart(10)}${"loop ms".padStart(10)}${"PG ms".padStart(10)}`)
    console.log(row("durable 3-step workflow runs", durable))
    console.log(row("raw limit: 3 sequential INSERTs per run", raw))
    const ratio = (durable.ok / durable.elapsedMs) / (raw.ok / raw.elapsedMs)
    console.log("")
    console.log(`  ratio to the raw limit: ${fmt(ratio, 3)} (target ≥ 900 runs/s, p50 ≤ 35 ms)`)
    console.log(
      `  journal check (warm-up included): ${completed[0]?.n} runs completed, ${steps[0]?.n} step rows, ${events[0]?.n} tool.call events`
    )
  })

const main = Effect.gen(function*() {
  const s = yield* settings
  yield* Effect.scoped(program(s)).pipe(Effect.provide(layerBench(s.poolSize)))
}).pipe(Logger.withMinimumLogLevel(LogLevel.Error))

NodeRuntime.runMain(main)
