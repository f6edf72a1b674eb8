/**
 * The tools a workflow may call, and how a call is made. `call` looks the tool up, then runs it
 * under its retry policy (the step's, else the tool's default), each attempt through the tool's
 * circuit breaker for the tenant, the tool's and the tenant's bulkheads and the timeout.
 *
 * Exactly once: a call's idempotency key is run id + step id (+ the attempt for idempotent
 * tools, which may harmlessly run again). For a non-idempotent tool the first result is stored in
 * `tool_calls` under that key; a later call with the key (a replay after a crash, a retry of a
 * step whose journal write failed) returns the stored result and does not act again. A
 * `transactional` tool's writes commit in the same tenant transaction as that record, so either
 * both happen or neither; any other tool (http) is checked before and recorded after, and is
 * given the key (e.g. as `Idempotency-Key`) for the window in between.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import type * as HttpClient from "@effect/platform/HttpClient"
import { builtinToolNames } from "@tessera/domain/Tool"
import type { SqlError } from "@effect/sql/SqlError"
import { ToolNotFound, ToolTimeout, type ToolError } from "@tessera/domain/ToolError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Bulkhead from "./Bulkhead.js"
import * as CircuitBreaker from "./CircuitBreaker.js"
import { Database } from "./Database.js"
import * as HttpTool from "./HttpTool.js"
import type { KnowledgeStore } from "./KnowledgeStore.js"
import * as KnowledgeTools from "./KnowledgeTools.js"
import * as LeadTools from "./LeadTools.js"
import * as NotifyTools from "./NotifyTools.js"
import * as OrderTools from "./OrderTools.js"
import type { PaymentGateway } from "./PaymentGateway.js"
import * as PaymentTools from "./PaymentTools.js"
import * as RetryPolicy from "./RetryPolicy.js"
import * as SandboxPayments from "./SandboxPayments.js"
import * as TicketTools from "./TicketTools.js"
import * as Timeout from "./Timeout.js"
import type { Compensation, Tool, ToolContext } from "./Tool.js"
import { storageFailure } from "./Tool.js"

export interface CallContext {
  readonly tenantId: string
  readonly runId: string
  readonly stepId: string
  readonly sessionId: string | null
  /** The run's activation count: part of the key of idempotent tools only. */
  readonly attempt: number
}

export interface CallOptions {
  readonly timeout?: Duration.Duration | undefined
  readonly retry?: RetryPolicy.RetryPolicy | undefined
}

export interface CallResult {
  readonly output: unknown
  readonly idempotencyKey: string
  /** The result was stored by an earlier call with the same key; the tool did not act again. */
  readonly replayed: boolean
}

/** Failures that say nothing about the tool's health are not counted by its breaker. */
const countsAgainstBreaker = (error: ToolError): boolean =>
  error._tag === "ToolTimeout" || (error._tag === "ToolFailed" && error.retryable)

const retryable = (error: ToolError): boolean =>
  error._tag === "ToolTimeout" || error._tag === "BulkheadFull" || (error._tag === "ToolFailed" && error.retryable)

export const idempotencyKey = (tool: Tool, context: CallContext): string =>
  tool.idempotent ? `${context.runId}:${context.stepId}:${context.attempt}` : `${context.runId}:${context.stepId}`

export const make = (extra: ReadonlyArray<Tool> = []) =>
  Effect.gen(function*() {
    const db = yield* Database
    const sql = db.sql
    const breakers = yield* CircuitBreaker.CircuitBreakers
    const bulkheads = yield* Bulkhead.Bulkheads
    const families = yield* Effect.all([
      OrderTools.make,
      PaymentTools.make,
      LeadTools.make,
      TicketTools.make,
      NotifyTools.make,
      KnowledgeTools.make,
      HttpTool.make
    ])
    const tools = new Map<string, Tool>()
    for (const tool of [...families.flat(), ...extra]) tools.set(tool.name, tool)
    const missing = builtinToolNames.filter((name) => !tools.has(name))
    if (missing.length > 0) return yield* Effect.dieMessage(`built-in tools without an implementation: ${missing.join(", ")}`)

    const stored = (tenantId: string, key: string) =>
      sql<{ result: unknown }>`SELECT result FROM tool_calls WHERE tenant_id = ${tenantId} AND idempotency_key = ${key}`.pipe(
        Effect.map((rows) => rows[0])
      )

    const record = (tool: Tool, context: ToolContext, input: unknown, output: unknown) =>
      sql`INSERT INTO tool_calls ${
        sql.insert({
          tenant_id: context.tenantId,
          idempotency_key: context.idempotencyKey,
          run_id: context.runId,
          step_id: context.stepId,
          tool: tool.name,
          input: JSON.stringify(input),
          result: JSON.stringify(output)
        })
      }`

    /** One attempt, exactly once per key for non-idempotent tools. */
    const attempt = (tool: Tool, input: unknown, context: ToolContext): Effect.Effect<CallResult, ToolError> => {
      const fresh = (output: unknown): CallResult => ({ output, idempotencyKey: context.idempotencyKey, replayed: false })
      const replay = (output: unknown): CallResult => ({ output, idempotencyKey: context.idempotencyKey, replayed: true })
      const inTenant = <A>(effect: Effect.Effect<A, ToolError | SqlError>): Effect.Effect<A, ToolError> =>
        db.tenant(context.tenantId)(effect).pipe(
          Effect.catchTag("SqlError", (error) => Effect.fail(storageFailure(tool.name)(error)))
        )
      if (tool.idempotent) {
        const run = Effect.map(tool.invoke(input, context), fresh)
        return tool.transactional ? inTenant(run) : run
      }
      if (tool.transactional) {
        return inTenant(Effect.gen(function*() {
          const previous = yield* stored(context.tenantId, context.idempotencyKey)
          if (previous !== undefined) return replay(previous.result)
          const output = yield* tool.invoke(input, context)
          yield* record(tool, context, input, output)
          return fresh(output)
        }))
      }
      return Effect.gen(function*() {
        const previous = yield* inTenant(stored(context.tenantId, context.idempotencyKey))
        if (previous !== undefined) return replay(previous.result)
        const output = yield* tool.invoke(input, context)
        yield* inTenant(record(tool, context, input, output).pipe(Effect.asVoid))
        return fresh(output)
      })
    }

    const call = (
      name: string,
      input: unknown,
      callContext: CallContext,
      options: CallOptions = {}
    ): Effect.Effect<CallResult, ToolError> =>
      Effect.gen(function*() {
        const tool = tools.get(name)
        if (tool === undefined) return yield* new ToolNotFound({ tool: name })
        const context: ToolContext = {
          tenantId: callContext.tenantId,
          runId: callContext.runId,
          stepId: callContext.stepId,
          sessionId: callContext.sessionId,
          idempotencyKey: idempotencyKey(tool, callContext)
        }
        const timeout = options.timeout ?? tool.timeout
        const once = attempt(tool, input, context).pipe(
          (effect) => Timeout.failAfter(effect, timeout, () => new ToolTimeout({ tool: name, timeoutMs: Duration.toMillis(timeout) })),
          (effect) => bulkheads.run(callContext.tenantId, name, effect),
          (effect) => breakers.run(`${callContext.tenantId}:${name}`, effect, countsAgainstBreaker)
        )
        return yield* RetryPolicy.retry(once, options.retry ?? tool.retry, retryable)
      }).pipe(Effect.withSpan("ToolRegistry.call", {
        attributes: { tool: name, tenant_id: callContext.tenantId },
        // A call is on every run's hot path; a stack capture per call costs more than the call.
        captureStackTrace: false
      }))

    /** The tool's default compensation of a finished call, if it has one. */
    const compensation = (name: string, input: unknown, output: unknown): Compensation | undefined =>
      tools.get(name)?.compensation(input, output)

    return {
      call,
      compensation,
      has: (name: string) => tools.has(name),
      names: () => [...tools.keys()].sort()
    } as const
  })

export class ToolRegistry extends Effect.Service<ToolRegistry>()("@tessera/runtime/ToolRegistry", {
  effect: make()
}) {}

type Requirements =
  | Database
  | KnowledgeStore
  | PaymentGateway
  | HttpClient.HttpClient
  | CircuitBreaker.CircuitBreakers
  | Bulkhead.Bulkheads

/** The built-in tools and `extra` ones, on the given payment gateway, HTTP client and resilience settings. */
export const layerWith = (extra: ReadonlyArray<Tool>): Layer.Layer<ToolRegistry, never, Requirements> =>
  Layer.effect(ToolRegistry, Effect.map(make(extra), (registry) => ToolRegistry.make(registry)))

/**
 * The built-in tools on the sandbox payment ledger and fetch, with breakers and bulkheads from
 * the environment (see CircuitBreaker and Bulkhead).
 */
export const layer: Layer.Layer<ToolRegistry, never, Database | KnowledgeStore> = layerWith([]).pipe(
  Layer.provide([SandboxPayments.layer, FetchHttpClient.layer, CircuitBreaker.layerConfig, Bulkhead.layerConfig])
)
