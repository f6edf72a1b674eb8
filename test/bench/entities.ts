/**
 * Entity benchmark: Tessera's entity paths against the raw limit of the same Postgres.
 *
 *   npm run bench:entities            (BENCH_SECONDS=5 per figure by default)
 *
 * One process, the live clock, a fresh migrated database (`TEST_DATABASE_URL`, default
 * postgres://postgres@127.0.0.1:5432/postgres), a one-node cluster on SQL storage
 * (`ClusterRunner.layerSingle`: persisted messages really go through Postgres) and the entity
 * behaviours of `Entities.layer`. Every figure is printed next to the raw limit measured in the
 * same run: single-row autocommit INSERTs through the same PgClient pool at the same concurrency.
 *
 * Environment:
 * - `BENCH_SECONDS` (default 5): measured seconds per figure (and per raw baseline).
 * - `BENCH_WARMUP_SECONDS` (default 1): unmeasured warm-up before each figure.
 * - `BENCH_POOL_SIZE` (default 20, the runtime's `DATABASE_POOL_SIZE` default): the one pool
 *   shared by the cluster storage, the entities and the raw baseline.
 * - `BENCH_TENANTS` (default 256): tenants the persisted and volatile figures spread over.
 * - `BENCH_ADMIT_TENANTS` (default 16): enterprise tenants the Admit figure spreads over.
 * - `BENCH_RUN_TENANTS` (default 8): enterprise tenants the run figure's sessions belong to.
 * - `BENCH_POLL_MS` (default 10): how often the run figure polls `agent_runs` for completions.
 * - `BENCH_FIGURES` (default 1,2,3,4): which figures to run (their raw baselines run with them).
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as SqlClient from "@effect/sql/SqlClient"
import { RunId, SessionId, TenantId, UserId } from "@tessera/domain/Ids"
import * as RunEntity from "@tessera/domain/RunEntity"
import { SessionEntity, entityId as sessionEntityId } from "@tessera/domain/SessionEntity"
import { TenantEntity } from "@tessera/domain/TenantEntity"
import * as ClusterRunner from "@tessera/runtime/ClusterRunner"
import * as Entities from "@tessera/runtime/Entities"
import * as KnowledgeStore from "@tessera/runtime/KnowledgeStore"
import * as LocalEmbedder from "@tessera/runtime/LocalEmbedder"
import * as PgVectorStore from "@tessera/runtime/PgVectorStore"
import * as ToolRegistry from "@tessera/runtime/ToolRegistry"
import * as WorkflowPlans from "@tessera/runtime/WorkflowPlans"
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as os from "node:os"
import { performance } from "node:perf_hooks"
import { fmt, layerDatabase, percentile } from "./Harness.js"

// ---------------------------------------------------------------------------------------------
// Settings

const allFigures: ReadonlyArray<number> = [1, 2, 3, 4]

const settings = Config.all({
  seconds: Config.number("BENCH_SECONDS").pipe(Config.withDefault(5)),
  warmupSeconds: Config.number("BENCH_WARMUP_SECONDS").pipe(Config.withDefault(1)),
  poolSize: Config.integer("BENCH_POOL_SIZE").pipe(Config.withDefault(20)),
  tenants: Config.integer("BENCH_TENANTS").pipe(Config.withDefault(256)),
  admitTenants: Config.integer("BENCH_ADMIT_TENANTS").pipe(Config.withDefault(16)),
  runTenants: Config.integer("BENCH_RUN_TENANTS").pipe(Config.withDefault(8)),
  pollMs: Config.integer("BENCH_POLL_MS").pipe(Config.withDefault(10)),
  figures: Config.array(Config.integer(), "BENCH_FIGURES").pipe(Config.withDefault(allFigures))
})
type Settings = Config.Config.Success<typeof settings>

/** Callers for the entity RPC and Admit figures; the run figure uses `runCallers`. */
const rpcCallers = 64
const runCallers = 32

// ---------------------------------------------------------------------------------------------
// Measurement

type Outcome = "ok" | "denied"

interface Result {
  readonly ok: number
  readonly denied: number
  readonly failed: number
  readonly elapsedMs: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly firstFailure: string | undefined
}

/**
 * `callers` loops, each issuing `op` back to back until `seconds` have passed; operations still
 * in flight at the deadline finish and count (the elapsed time includes them).
 */
const measure = <E, R>(
  callers: number,
  seconds: number,
  op: (caller: number, i: number) => Effect.Effect<Outcome, E, R>
): Effect.Effect<Result, never, R> =>
  Effect.suspend(() => {
    const latencies: Array<number> = []
    let ok = 0
    let denied = 0
    let failed = 0
    let firstFailure: string | undefined
    const start = performance.now()
    const deadline = start + seconds * 1000
    const caller = (c: number) =>
      Effect.gen(function*() {
        let i = 0
        while (performance.now() < deadline) {
          const t0 = performance.now()
          const exit = yield* Effect.exit(op(c, i++))
          latencies.push(performance.now() - t0)
          if (Exit.isSuccess(exit)) {
            if (exit.value === "ok") ok++
            else denied++
          } else {
            failed++
            firstFailure ??= Cause.pretty(exit.cause).split("\n")[0]
          }
        }
      })
    return Effect.forEach(Array.from({ length: callers }, (_, c) => c), caller, {
      concurrency: "unbounded",
      discard: true
    }).pipe(Effect.map(() => {
      const elapsedMs = performance.now() - start
      latencies.sort((a, b) => a - b)
      return {
        ok,
        denied,
        failed,
        elapsedMs,
        p50Ms: percentile(latencies, 0.5),
        p99Ms: percentile(latencies, 0.99),
        firstFailure
      }
    }))
  })

/** Warm-up (unmeasured), then the measured run. */
const bench = <E, R>(
  s: Settings,
  callers: number,
  op: (caller: number, i: number) => Effect.Effect<Outcome, E, R>,
  beforeMeasured: () => void = () => {}
): Effect.Effect<Result, never, R> =>
  Effect.zipRight(
    s.warmupSeconds > 0 ? measure(callers, s.warmupSeconds, op) : Effect.void,
    Effect.zipRight(Effect.sync(beforeMeasured), measure(callers, s.seconds, op))
  )

const opsPerSecond = (r: Result, count: number) => count / (r.elapsedMs / 1000)

// ---------------------------------------------------------------------------------------------
// Layers

// Runs execute the built-in echo workflow on the real tool registry.
const layerWorkflows = Layer.mergeAll(
  ToolRegistry.layer.pipe(Layer.provide(KnowledgeStore.layer), Layer.provide(PgVectorStore.layer), Layer.provide(LocalEmbedder.layer)),
  WorkflowPlans.layerStatic([])
).pipe(Layer.orDie)

const layerBench = (poolSize: number) =>
  Entities.layer.pipe(
    Layer.provideMerge(layerWorkflows),
    Layer.provideMerge(ClusterRunner.layerSingle()),
    Layer.provideMerge(layerDatabase(poolSize))
  )

// ---------------------------------------------------------------------------------------------
// Figures

const tenantId = (prefix: string, i: number) => TenantId.make(`${prefix}_${i}`)

const program = (s: Settings) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const tenants = yield* TenantEntity.client
    const sessions = yield* SessionEntity.client

    const pg = yield* sql<{ server_version: string }>`SHOW server_version`
    console.log("Tessera entity benchmark")
    console.log(
      `  node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? "?"}), ` +
        `load average ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}, Postgres ${pg[0]?.server_version ?? "?"}`
    )
    console.log(
      `  ${s.seconds} s per figure after ${s.warmupSeconds} s warm-up; one PgClient pool of ${s.poolSize} connections ` +
        "shared by cluster storage, entities and the raw baseline"
    )
    console.log("  cluster: ClusterRunner.layerSingle (SqlMessageStorage + SqlRunnerStorage), live clock")

    // Setup: tenants for the RPC figures (pro), for Admit and for runs (enterprise).
    const setupStart = performance.now()
    const provision = (id: TenantId, plan: "pro" | "enterprise") =>
      tenants(id).Provision({ name: `Bench ${id}`, plan })
    yield* Effect.forEach(
      Array.from({ length: s.tenants }, (_, i) => tenantId("bt", i)),
      (id) => provision(id, "pro"),
      { concurrency: 32, discard: true }
    )
    yield* Effect.forEach(
      Array.from({ length: s.admitTenants }, (_, i) => tenantId("ba", i)),
      (id) => provision(id, "enterprise"),
      { concurrency: 16, discard: true }
    )
    const runTenants = Array.from({ length: s.runTenants }, (_, i) => tenantId("br", i))
    yield* Effect.forEach(runTenants, (id) => provision(id, "enterprise"), { concurrency: 16, discard: true })
    // One session per run caller (a session serialises its Sends), spread over the run tenants.
    const sessionOf = (c: number) => ({
      tenantId: runTenants[c % runTenants.length]!,
      sessionId: SessionId.make(`bs_${c}`),
      userId: UserId.make(`bu_${c}`)
    })
    yield* Effect.forEach(
      Array.from({ length: runCallers }, (_, c) => sessionOf(c)),
      (x) => sessions(sessionEntityId(x.tenantId, x.sessionId)).Open({ userId: x.userId, channel: "api" }),
      { concurrency: 16, discard: true }
    )
    yield* sql`CREATE TABLE bench_raw (id bigserial PRIMARY KEY, v text NOT NULL)`
    console.log(
      `  setup: ${s.tenants} pro tenants, ${s.admitTenants} + ${s.runTenants} enterprise tenants, ${runCallers} sessions ` +
        `in ${((performance.now() - setupStart) / 1000).toFixed(1)} s`
    )
    console.log("")

    const rawInsert = () => Effect.as(sql`INSERT INTO bench_raw (v) VALUES (${"bench"})`, "ok" as const)
    const tenantFor = (c: number, i: number) => tenantId("bt", (c + i * rpcCallers) % s.tenants)

    const phase = <E, R>(
      label: string,
      callers: number,
      op: (c: number, i: number) => Effect.Effect<Outcome, E, R>,
      beforeMeasured?: () => void
    ) =>
      Effect.gen(function*() {
        process.stdout.write(`  measuring ${label} (${callers} callers)…`)
        const r = yield* bench(s, callers, op, beforeMeasured)
        process.stdout.write(` ${r.ok + r.denied} ops, ${r.failed} failed\n`)
        if (r.firstFailure !== undefined) console.log(`    first failure: ${r.firstFailure}`)
        return r
      })

    const wants = (figure: number) => s.figures.includes(figure)
    const rows: Array<{ figure: string; r: Result; count: number; raw: Result; callers: number }> = []
    const notes: Array<string> = []

    if (wants(1) || wants(2) || wants(3)) {
      // Raw limit at 64.
      const raw64 = yield* phase("raw INSERT+COMMIT", rpcCallers, () => rawInsert())

      if (wants(1)) {
        // 1. Persisted entity RPC: SetFeatureFlag (an UPDATE + audit row, then a reload) over many tenants.
        const persisted = yield* phase("Tenant.SetFeatureFlag (persisted)", rpcCallers, (c, i) =>
          Effect.as(tenants(tenantFor(c, i)).SetFeatureFlag({ flag: "bench", enabled: i % 2 === 0 }), "ok" as const))
        rows.push({ figure: "1. Tenant.SetFeatureFlag, persisted RPC (msg/s)", r: persisted, count: persisted.ok, raw: raw64, callers: rpcCallers })
        notes.push(`1. persisted: ${s.tenants} pro tenants; each message is stored and answered through SqlMessageStorage`)
      }

      if (wants(2)) {
        // 2. Volatile entity RPC: GetConfig (answered from the entity's memory) over the same tenants.
        const volatile = yield* phase("Tenant.GetConfig (volatile)", rpcCallers, (c, i) =>
          Effect.as(tenants(tenantFor(c, i)).GetConfig(), "ok" as const))
        rows.push({ figure: "2. Tenant.GetConfig, volatile RPC (msg/s)", r: volatile, count: volatile.ok, raw: raw64, callers: rpcCallers })
      }

      if (wants(3)) {
        // 3. Admit decisions over a few enterprise tenants; QuotaExceeded counts as a denial.
        const admit = yield* phase("Tenant.Admit (volatile)", rpcCallers, (c, i) =>
          tenants(tenantId("ba", (c + i) % s.admitTenants)).Admit({}).pipe(
            Effect.as("ok" as const),
            Effect.catchTag("QuotaExceeded", () => Effect.succeed("denied" as const))
          ))
        rows.push({ figure: "3. Tenant.Admit (decisions/s)", r: admit, count: admit.ok + admit.denied, raw: raw64, callers: rpcCallers })
        notes.push(
          `3. Admit: ${fmt(admit.ok)} admitted, ${fmt(admit.denied)} denied (QuotaExceeded) over ${s.admitTenants} enterprise ` +
            "tenants (token bucket of 6,000 requests/min each); ops/s counts both"
        )
      }
    }

    if (wants(4)) {
      // Raw limit at 32.
      const raw32 = yield* phase("raw INSERT+COMMIT", runCallers, () => rawInsert())

      // 4. Journaled echo runs: Session.Send (message + run request in one transaction, Admit,
      // Run.Start, which answers once the run is under way), then wait until the run row is terminal. One poller batches the
      // completion checks of all callers into one indexed query every BENCH_POLL_MS.
      const waiting = new Map<string, { readonly tenantId: string; readonly done: Deferred.Deferred<string> }>()
      const poll = Effect.gen(function*() {
        if (waiting.size > 0) {
          const keys = [...waiting.keys()]
          const tenantIds = [...new Set(keys.map((k) => waiting.get(k)!.tenantId))]
          const found = yield* sql<{ id: string; status: string }>`SELECT id, status FROM agent_runs
            WHERE tenant_id IN ${sql.in(tenantIds)} AND id IN ${sql.in(keys)}
              AND status IN ('completed', 'failed', 'cancelled')`
          for (const row of found) {
            const entry = waiting.get(row.id)
            if (entry !== undefined) {
              waiting.delete(row.id)
              yield* Deferred.succeed(entry.done, row.status)
            }
          }
        }
        yield* Effect.sleep(s.pollMs)
      }).pipe(Effect.forever)
      const poller = yield* Effect.forkScoped(poll)
      // Where a run's latency goes: the Send until its reply, then until the row is terminal.
      const sendMs: Array<number> = []
      const waitMs: Array<number> = []
      const runOnce = (c: number, i: number) =>
        Effect.gen(function*() {
          const t0 = performance.now()
          const x = sessionOf(c)
          const sent = yield* sessions(sessionEntityId(x.tenantId, x.sessionId)).Send({
            message: `echo ${c}/${i}`,
            userId: x.userId,
            workflow: "echo"
          })
          const acked = performance.now()
          const done = yield* Deferred.make<string>()
          waiting.set(sent.runId satisfies RunId, { tenantId: x.tenantId, done })
          const status = yield* Deferred.await(done)
          sendMs.push(acked - t0)
          waitMs.push(performance.now() - acked)
          if (status !== "completed") return yield* Effect.fail(`run ${sent.runId} ended ${status}`)
          return "ok" as const
        })
      const runs = yield* phase("Session.Send → echo run completed", runCallers, runOnce, () => {
        sendMs.length = 0
        waitMs.length = 0
      })
      // 5. The journal alone: the run row is written (requested), Run.Start, then the run's one
      // journaled step folds in its start and completion (one transaction), as DESIGN.md's
      // "naive journal" figure measures it.
      const runEntities = yield* RunEntity.handles
      let seq = 0
      const journalOnce = (c: number) =>
        Effect.gen(function*() {
          const tenant = runTenants[c % runTenants.length]!
          const id = RunId.make(`bench_${c}_${seq++}`)
          yield* sql`INSERT INTO agent_runs (tenant_id, id, workflow, status, input)
            VALUES (${tenant}, ${id}, 'echo', 'requested', ${JSON.stringify({ message: id })})`
          const done = yield* Deferred.make<string>()
          waiting.set(id, { tenantId: tenant, done })
          yield* runEntities(tenant, id).Start()
          const status = yield* Deferred.await(done)
          if (status !== "completed") return yield* Effect.fail(`run ${id} ended ${status}`)
          return "ok" as const
        })
      const journaled = yield* phase("run row → Run.Start → echo step completed", runCallers, journalOnce)
      rows.push({ figure: "5. Run.Start → journaled step completed (runs/s)", r: journaled, count: journaled.ok, raw: raw32, callers: runCallers })
      yield* Fiber.interrupt(poller)
      // The last runs release their tenant slot (RecordUsage) just after their row completes.
      yield* Effect.sleep("500 millis")
      sendMs.sort((a, b) => a - b)
      waitMs.sort((a, b) => a - b)
      const check = yield* sql<{ status: string; n: string }>`SELECT status, count(*) AS n FROM agent_runs
        GROUP BY status ORDER BY status`
      rows.push({ figure: "4. Send → journaled echo run completed (runs/s)", r: runs, count: runs.ok, raw: raw32, callers: runCallers })
      notes.push(
        `4. runs: Session.Send, then wait until agent_runs.status = 'completed' (one batched poll every ${s.pollMs} ms); ` +
          `one session per caller over ${s.runTenants} enterprise tenants (256 concurrent runs, 6,000 requests/min each) ` +
          "so quotas do not throttle",
        `   latency split: Send reply p50 ${fmt(percentile(sendMs, 0.5), 2)} / p99 ${fmt(percentile(sendMs, 0.99), 2)} ms, ` +
          `then until completed p50 ${fmt(percentile(waitMs, 0.5), 2)} / p99 ${fmt(percentile(waitMs, 0.99), 2)} ms`,
        `   agent_runs at the end (warm-up included): ${check.map((r) => `${r.status} ${r.n}`).join(", ")}`,
        "5. journal only: INSERT the requested run row, Run.Start, wait until completed (same poller); no Session, no Admit"
      )
    }

    // Table.
    const pad = (v: string, n: number) => v.padStart(n)
    console.log("")
    console.log(
      `  ${"figure".padEnd(50)}${pad("callers", 8)}${pad("ops/s", 10)}${pad("raw ops/s", 11)}${pad("ratio", 8)}` +
        `${pad("p50 ms", 9)}${pad("p99 ms", 9)}${pad("raw p50", 9)}${pad("raw p99", 9)}`
    )
    for (const row of rows.sort((a, b) => a.figure.localeCompare(b.figure))) {
      const ops = opsPerSecond(row.r, row.count)
      const raw = opsPerSecond(row.raw, row.raw.ok)
      console.log(
        `  ${row.figure.padEnd(50)}${pad(String(row.callers), 8)}${pad(fmt(ops), 10)}${pad(fmt(raw), 11)}` +
          `${pad(fmt(ops / raw, 3), 8)}${pad(fmt(row.r.p50Ms, 2), 9)}${pad(fmt(row.r.p99Ms, 2), 9)}` +
          `${pad(fmt(row.raw.p50Ms, 2), 9)}${pad(fmt(row.raw.p99Ms, 2), 9)}`
      )
    }
    console.log("")
    console.log(
      `  raw limit: single-row INSERT INTO bench_raw (autocommit) at the figure's concurrency, same pool of ${s.poolSize}`
    )
    for (const note of notes) console.log(`  ${note}`)
    const failures = rows.filter((row) => row.r.failed > 0)
    if (failures.length > 0) {
      console.log(`  failures: ${failures.map((row) => `${row.figure.slice(0, 2)} ${row.r.failed}`).join(", ")}`)
    }
  })

const main = Effect.gen(function*() {
  const s = yield* settings
  yield* Effect.scoped(program(s)).pipe(Effect.provide(layerBench(s.poolSize)))
  // Errors only: the runtime's teardown warnings (runner deregistration) are not results. Failed
  // operations are counted, and the first failure of each figure printed, by the benchmark itself.
}).pipe(Logger.withMinimumLogLevel(LogLevel.Error))

NodeRuntime.runMain(main)
