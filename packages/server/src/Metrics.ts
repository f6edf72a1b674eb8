/**
 * `GET /metrics`: every Effect metric of this process in the Prometheus text exposition format
 * (counters, gauges, histograms with cumulative buckets, summaries, frequencies as a counter per
 * value), and the edge's own metrics.
 */
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import type * as MetricPair from "effect/MetricPair"
import * as MetricState from "effect/MetricState"
import * as Option from "effect/Option"

export const httpRequests = Metric.counter("tessera_http_requests_total", {
  description: "HTTP requests answered by the edge, by route and status class"
})

export const httpDuration = Metric.histogram(
  "tessera_http_request_duration_ms",
  MetricBoundaries.exponential({ start: 1, factor: 2, count: 14 }),
  "HTTP request latency in milliseconds"
)

export const wsActiveConnections = Metric.gauge("ws_active_connections", {
  description: "Open WebSocket connections on this node"
})

export const wsBackpressureDrops = Metric.counter("ws_backpressure_drops", {
  description: "Intermediate WebSocket frames dropped or coalesced because a consumer was slow"
})

export const wsClosedOverBound = Metric.counter("ws_closed_over_bound_total", {
  description: "WebSocket connections closed because they stayed over their send-queue bound"
})

const name = (raw: string) => raw.replace(/[^a-zA-Z0-9_:]/g, "_")

const escape = (value: string) => value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, "\\\"")

const labels = (tags: ReadonlyArray<{ readonly key: string; readonly value: string }>, extra?: readonly [string, string]) => {
  const all = [...tags.map((t) => [t.key, t.value] as const), ...(extra === undefined ? [] : [extra])]
  return all.length === 0 ? "" : `{${all.map(([k, v]) => `${name(k)}="${escape(v)}"`).join(",")}}`
}

const number = (value: number | bigint) => {
  if (typeof value === "bigint") return value.toString()
  return Number.isFinite(value) ? String(value) : value > 0 ? "+Inf" : value < 0 ? "-Inf" : "NaN"
}

/** The exposition text of a metrics snapshot. */
export const render = (pairs: ReadonlyArray<MetricPair.MetricPair.Untyped>): string => {
  const families = new Map<string, { type: string; help: string; lines: Array<string> }>()
  const family = (metric: string, type: string, help: string) => {
    let f = families.get(metric)
    if (f === undefined) {
      f = { type, help, lines: [] }
      families.set(metric, f)
    }
    return f
  }
  for (const pair of pairs) {
    const key = pair.metricKey
    const metric = name(key.name)
    const help = Option.getOrElse(key.description, () => key.name)
    const state: unknown = pair.metricState
    const tags = key.tags
    if (MetricState.isCounterState(state)) {
      family(metric, "counter", help).lines.push(`${metric}${labels(tags)} ${number(state.count)}`)
    } else if (MetricState.isGaugeState(state)) {
      family(metric, "gauge", help).lines.push(`${metric}${labels(tags)} ${number(state.value)}`)
    } else if (MetricState.isHistogramState(state)) {
      const f = family(metric, "histogram", help)
      for (const [bound, count] of state.buckets) {
        f.lines.push(`${metric}_bucket${labels(tags, ["le", number(bound)])} ${count}`)
      }
      f.lines.push(`${metric}_bucket${labels(tags, ["le", "+Inf"])} ${state.count}`)
      f.lines.push(`${metric}_sum${labels(tags)} ${number(state.sum)}`)
      f.lines.push(`${metric}_count${labels(tags)} ${state.count}`)
    } else if (MetricState.isSummaryState(state)) {
      const f = family(metric, "summary", help)
      for (const [quantile, value] of state.quantiles) {
        if (Option.isSome(value)) f.lines.push(`${metric}${labels(tags, ["quantile", String(quantile)])} ${number(value.value)}`)
      }
      f.lines.push(`${metric}_sum${labels(tags)} ${number(state.sum)}`)
      f.lines.push(`${metric}_count${labels(tags)} ${state.count}`)
    } else if (MetricState.isFrequencyState(state)) {
      const f = family(metric, "counter", help)
      for (const [value, count] of state.occurrences) {
        f.lines.push(`${metric}${labels(tags, ["value", value])} ${count}`)
      }
    }
  }
  const out: Array<string> = []
  for (const [metric, f] of families) {
    out.push(`# HELP ${metric} ${escape(f.help)}`, `# TYPE ${metric} ${f.type}`, ...f.lines)
  }
  return `${out.join("\n")}\n`
}

export const handler = Effect.map(Metric.snapshot, (pairs) =>
  HttpServerResponse.text(render(pairs), { contentType: "text/plain; version=0.0.4; charset=utf-8" }))
