/**
 * Router benchmark.
 *
 *   npm run bench:router            (BENCH_DECISIONS=100000 by default)
 *
 * 1. Decision latency: `BENCH_DECISIONS` decisions (the router's decision path, `decideWith`:
 *    features, calibrated classifier, LinUCB scores, on a warm tenant state) over the shipped
 *    queries in turn, each timed with `process.hrtime`; p50, p99 and max. Printed next to the
 *    peer a networked router could not beat: one HTTP round trip to a server on loopback (p50
 *    and p99 over `BENCH_HTTP` requests, default 2000), measured in the same run.
 * 2. On the shipped labelled set (`test/fixtures/router/queries.jsonl`): the cost saved against
 *    always-LLM at the quality kept, replayed through the router (cross-validated classifier,
 *    online bandit, escalation), next to always-LLM and SLM_A-first-with-escalation.
 */
import * as Router from "@tessera/runtime/Router"
import * as RouterEval from "@tessera/runtime/RouterEval"
import * as Either from "effect/Either"
import { readFileSync } from "node:fs"
import * as http from "node:http"

const decisions = Number(process.env["BENCH_DECISIONS"] ?? 100_000)
const httpRequests = Number(process.env["BENCH_HTTP"] ?? 2_000)

const queries = Either.getOrThrow(RouterEval.parse(readFileSync(new URL("../fixtures/router/queries.jsonl", import.meta.url), "utf8")))

const percentile = (sorted: ReadonlyArray<number>, p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!
const us = (ms: number) => `${(ms * 1000).toFixed(1)} µs`

const decisionLatency = () => {
  const options: Router.Options = { ...Router.defaults, costs: RouterEval.meanCosts(queries), classifier: RouterEval.trainOn(queries) }
  const state = Router.emptyState(options)
  const requests = queries.map((q) => ({ text: q.query, strict: q.context.strict ?? false, plan: q.context.plan }))
  // Warm the tenant: its vocabulary and a few hundred outcomes in the bandit.
  queries.forEach((q, i) => {
    const decided = Router.decideWith(state, requests[i]!, options)
    Router.learn(state, { decided, tier: "LLM", passed: q.tiers[decided.decision.tier].ok, answered: true, repairs: 0, costUsd: q.tiers.LLM.cost }, options)
  })
  const times = new Float64Array(decisions)
  for (let i = 0; i < decisions; i++) {
    const start = process.hrtime.bigint()
    Router.decideWith(state, requests[i % requests.length]!, options)
    times[i] = Number(process.hrtime.bigint() - start) / 1e6
  }
  const sorted = Array.from(times).sort((a, b) => a - b)
  return { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), max: sorted[sorted.length - 1]! }
}

const loopbackRoundTrip = async () => {
  const server = http.createServer((_, res) => res.end("{\"tier\":\"SLM_A\"}"))
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const address = server.address()
  const port = typeof address === "object" && address !== null ? address.port : 0
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  const once = () =>
    new Promise<void>((resolve, reject) => {
      http.get({ host: "127.0.0.1", port, path: "/route", agent }, (res) => {
        res.resume()
        res.on("end", resolve)
      }).on("error", reject)
    })
  for (let i = 0; i < 200; i++) await once()
  const times: Array<number> = []
  for (let i = 0; i < httpRequests; i++) {
    const start = process.hrtime.bigint()
    await once()
    times.push(Number(process.hrtime.bigint() - start) / 1e6)
  }
  agent.destroy()
  await new Promise<void>((resolve) => server.close(() => resolve()))
  times.sort((a, b) => a - b)
  return { p50: percentile(times, 0.5), p99: percentile(times, 0.99) }
}

const main = async () => {
  const latency = decisionLatency()
  const peer = await loopbackRoundTrip()
  console.log(`router decision latency over ${decisions} decisions: p50 ${us(latency.p50)}, p99 ${us(latency.p99)}, max ${us(latency.max)}`)
  console.log(`  peer: one loopback HTTP round trip (keep-alive) over ${httpRequests}: p50 ${us(peer.p50)}, p99 ${us(peer.p99)}`)
  console.log(`  the decision is ${(peer.p50 / latency.p50).toFixed(0)}× faster than the round trip alone at p50`)
  const report = RouterEval.evaluate(queries)
  const percent = (x: number) => `${(x * 100).toFixed(1)} %`
  console.log(`shipped set (${report.queries} queries), replayed through the router:`)
  console.log(`  router:        cost saved vs always-LLM ${percent(1 - report.costRatio)} at quality kept ${percent(report.qualityKept)} ` +
    `(first try ${percent(report.firstTryQualityKept)}; misroutes ${percent(report.misrouteRate)}); regret ${report.regret.at(-1)!.cumulative.toFixed(2)}`)
  console.log(`  always-LLM:    cost saved 0.0 % at quality kept 100.0 %; regret ${report.baselines.alwaysLlm.regret.toFixed(2)}`)
  console.log(`  SLM_A first:   cost saved ${percent(1 - report.baselines.cheapestFirst.costRatio)} at quality kept ${percent(report.baselines.cheapestFirst.qualityKept)} ` +
    `(every miss escalates); regret ${report.baselines.cheapestFirst.regret.toFixed(2)}`)
}

main().catch((error) => {
  console.error(error)
  process.exitCode = 1
})
