/**
 * Executes a compiled workflow (WorkflowPlan) on a run's journal.
 *
 * Deterministic replay: the executor walks the plan from its start on every activation. A step
 * whose journal row exists (step id, `#n` for its n-th visit, `parent/child` inside a
 * sub-workflow) is not executed again: its recorded output and next step are used. The first
 * step without a row executes, and its row is written once, with its events, in one statement
 * (RunJournal.appendSteps, group-committed by JournalWriter); the run's end is folded into its
 * last step's statement. Side effects
 * carry idempotency keys from run id + journal step id (ToolRegistry), so a step that acted but
 * whose row was lost to a crash returns its first result when it runs again.
 *
 * Per step: a timeout (`StepTimeout`) and a retry policy, then `on_error` — `retry` (the step's
 * policy, or 3 exponential retries), `fallback:<step>`, `continue` (the failure is the output),
 * `escalate` (a journaled hand-off to a human: tickets.escalate, and the run answers so), or
 * by default: the run stops. Per run: budgets (`wall_ms` as a deadline on every step, `tokens`
 * and `cost_usd` after each), a maximum number of steps (`WORKFLOW_MAX_STEPS`, default 200) and
 * repair-loop detection in `validate` steps. A stopped run runs the compensations of its
 * completed steps in reverse order, each journaled (`compensate:<step>`) with its tool events,
 * and ends `compensated` (or `failed` when it had nothing to undo or a compensation failed).
 */
import type { SqlError } from "@effect/sql/SqlError"
import { Answer, Citation } from "@tessera/domain/Answer"
import type { EventEnvelope } from "@tessera/domain/Event"
import { ClassifyRequest, GenerateRequest, Label as LlmLabel, LlmMessage, Passage } from "@tessera/domain/Llm"
import {
  BudgetExceeded,
  LlmGatewayMissing,
  RepairLoopDetected,
  StepFailed,
  StepLimitExceeded,
  StepTimeout,
  WaitTimedOut
} from "@tessera/domain/RunError"
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type { Database } from "./Database.js"
import * as Gates from "./Gates.js"
import { JournalWriter } from "./JournalWriter.js"
import type { RunRow, StepRow } from "./internal/rows.js"
import { LlmGateway } from "./LlmGateway.js"
import * as RetryPolicy from "./RetryPolicy.js"
import { RouterPort } from "./RouterPort.js"
import * as RunJournal from "./RunJournal.js"
import * as Timeout from "./Timeout.js"
import { ToolRegistry } from "./ToolRegistry.js"
import type * as WorkflowPlan from "./WorkflowPlan.js"
import { WorkflowPlans } from "./WorkflowPlans.js"

/** What the host of a run (the Run entity) gives its execution. */
export interface Host {
  /** `host:port` of the runner, recorded on the run. */
  readonly runner: string
  /** The payload of the run's signal `name`, once it has arrived (it may have already). */
  readonly awaitSignal: (name: string) => Effect.Effect<unknown, SqlError>
}

export interface Settings {
  readonly maxSteps: number
}

export const defaultSettings: Settings = { maxSteps: 200 }

/** Sub-workflows nest at most this deep (the validator refuses recursion; this guards the executor). */
const maxDepth = 8

/** The default policy of `on_error: retry` on a step without a `retry` block. */
const defaultRetry: RetryPolicy.RetryPolicy = {
  times: 3,
  backoff: "exponential",
  base: Duration.millis(500),
  max: Duration.seconds(10),
  jitter: 0.2
}

/** A step failure as journaled: a stable code and a message. */
interface Failure {
  readonly code: string
  readonly message: string
  /** Worth another attempt under the step's retry policy. */
  readonly retryable: boolean
}

/** The run stops: compensate and end. */
class RunStopped extends Data.TaggedError("RunStopped")<{ readonly failure: Failure }> {}

/** The run hands the conversation to a human. */
class Escalation extends Data.TaggedError("Escalation")<{ readonly step: string; readonly reason: string }> {}

type Interrupt = RunStopped | Escalation | SqlError | RunJournal.JournalConflict

interface Outcome {
  readonly output: unknown
  readonly next: string | undefined
  readonly tier: string | null
  readonly tokens: number
  readonly costUsd: number
  readonly events: ReadonlyArray<typeof EventEnvelope.Encoded>
  readonly outcome: string
}

interface Pending {
  readonly journalId: string
  readonly tool: string
  readonly input: unknown
}

const failureOf = (error: { readonly _tag: string; readonly message: string }, retryable = false): Failure => ({
  code: "code" in error && typeof error.code === "string" ? error.code : error._tag,
  message: error.message,
  retryable
})

const encodeAnswer = Schema.encodeSync(Answer)

/** A number of milliseconds or a duration string ("10 minutes"). */
const durationOf = (value: unknown): Duration.Duration | undefined =>
  typeof value === "number" && Number.isFinite(value) && value >= 0
    ? Duration.millis(value)
    : typeof value === "string"
    ? Option.getOrUndefined(Duration.decodeUnknown(value))
    : undefined

const isRecord = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

const asRecord = (value: unknown): Readonly<Record<string, unknown>> => isRecord(value) ? value : {}

/** A list of search hits: the value itself, or its `hits` (a retrieve step's output). */
const hitsOf = (value: unknown): ReadonlyArray<unknown> => {
  if (Array.isArray(value)) return value
  const hits = asRecord(value).hits
  return Array.isArray(hits) ? hits : []
}

const asText = (value: unknown): string =>
  typeof value === "string" ? value : value === null || value === undefined ? "" : JSON.stringify(value)

const toPassages = (value: unknown): ReadonlyArray<Passage> => {
  return hitsOf(value).flatMap((hit, i) => {
    const h = asRecord(hit)
    if (typeof h.text !== "string") return []
    return [
      new Passage({
        id: typeof h.id === "string" ? h.id : String(i),
        text: h.text,
        source: typeof h.source_key === "string" ? h.source_key : typeof h.source === "string" ? h.source : "",
        title: typeof h.title === "string" ? h.title : "",
        score: typeof h.score === "number" ? h.score : 0
      })
    ]
  })
}

const toCitations = (value: unknown): ReadonlyArray<Citation> => {
  const seen = new Set<string>()
  return hitsOf(value).flatMap((hit) => {
    const h = asRecord(hit)
    const documentId = typeof h.document_id === "string" ? h.document_id : undefined
    if (documentId === undefined || seen.has(documentId)) return []
    seen.add(documentId)
    return [
      new Citation({
        documentId,
        sourceKey: typeof h.source_key === "string" ? h.source_key : "",
        title: typeof h.title === "string" ? h.title : "",
        headingPath: Array.isArray(h.heading_path) ? h.heading_path.filter((p): p is string => typeof p === "string") : []
      })
    ]
  })
}

/**
 * Executes the run's workflow from its journal to its end and answers the status it ended in.
 * Fails only with storage errors or a JournalConflict (another activation journaled under this
 * one); every step failure ends in the journal.
 */
export const execute = (
  journal: RunJournal.Journal,
  host: Host,
  settings: Settings = defaultSettings
): Effect.Effect<
  "completed" | "failed" | "compensated",
  SqlError | RunJournal.JournalConflict,
  Database | JournalWriter | ToolRegistry | WorkflowPlans
> =>
  Effect.gen(function*() {
    const tools = yield* ToolRegistry
    const writer = yield* JournalWriter
    const plans = yield* WorkflowPlans
    const gateway = yield* Effect.serviceOption(LlmGateway)
    const run: RunRow = journal.run
    const rows = new Map<string, StepRow>(journal.steps.map((s) => [s.step_id, s]))
    const runInput = asRecord(run.input)
    const context = asRecord(runInput.context)
    const attempt = run.attempts + 1

    let seq = journal.steps.reduce((max, s) => Math.max(max, s.seq + 1), 0)
    let first = true
    let stepsTaken = 0
    let tokens = 0
    let costUsd = 0
    let tier: string | null = null
    let answer: unknown = undefined
    const path: Array<string> = [run.workflow]
    const compensations: Array<Pending> = []
    const startedMs = journal.steps.length > 0
      ? Math.min(...journal.steps.map((s) => s.started_at.getTime()))
      : yield* Clock.currentTimeMillis
    // When the journal last moved: a wait that resumes after a crash counts its timeout from here.
    let lastJournaledMs = journal.steps.reduce((max, s) => Math.max(max, s.finished_at.getTime()), startedMs)

    const found = yield* plans.get(run.tenant_id, run.workflow).pipe(Effect.either)
    const limits = Either.isRight(found) ? found.right.budgets : { wallMs: undefined, tokens: undefined, costUsd: undefined }
    const maxSteps = Math.min(settings.maxSteps, (Either.isRight(found) ? found.right.maxSteps : undefined) ?? Infinity)

    const write = (
      journalId: string,
      kind: string,
      status: "completed" | "failed",
      outcome: Outcome,
      startedAt: number,
      error: string | null,
      end: RunJournal.RunEnd | undefined
    ) =>
      Effect.gen(function*() {
        const finishedAt = yield* Clock.currentTimeMillis
        lastJournaledMs = finishedAt
        yield* writer.append(run, {
          stepId: journalId,
          seq,
          kind,
          status,
          output: outcome.output,
          startedAt: new Date(startedAt),
          finishedAt: new Date(finishedAt),
          next: outcome.next ?? null,
          outcome: outcome.outcome,
          tier: outcome.tier,
          tokens: outcome.tokens,
          costUsd: outcome.costUsd,
          attempts: 1,
          error,
          events: outcome.events,
          first,
          end,
          runner: host.runner
        })
        seq++
        first = false
        rows.set(journalId, {
          step_id: journalId,
          seq: seq - 1,
          kind,
          status,
          output: outcome.output,
          started_at: new Date(startedAt),
          finished_at: new Date(finishedAt),
          next_step: outcome.next ?? null,
          outcome: outcome.outcome,
          error,
          tier: outcome.tier,
          tokens: outcome.tokens,
          cost_usd: outcome.costUsd
        })
      })

    const toolEvents = (journalId: string, tool: string, input: unknown, key: string, result: Either.Either<unknown, Failure>) => {
      const base = { step: journalId, tool, idempotency_key: key }
      return [
        RunJournal.event(run, "tool.call.requested", { ...base, input }, `tool.call.requested:${journalId}`),
        Either.isRight(result)
          ? RunJournal.event(run, "tool.call.succeeded", { ...base, output: result.right }, `tool.call.succeeded:${journalId}`)
          : RunJournal.event(run, "tool.call.failed", { ...base, error: result.left }, `tool.call.failed:${journalId}`)
      ]
    }

    const evaluate = (value: WorkflowPlan.Value, scope: WorkflowPlan.Scope, step: string): Effect.Effect<unknown, Failure> =>
      Either.match(value(scope), {
        onLeft: (reason) => Effect.fail({ code: "expression_error", message: `step ${step}: ${reason}`, retryable: false }),
        onRight: Effect.succeed
      })

    const needGateway = (step: WorkflowPlan.Step) =>
      Option.match(gateway, {
        onNone: () => Effect.fail(failureOf(new LlmGatewayMissing({ step: step.id, kind: step.kind._tag }))),
        onSome: Effect.succeed
      })

    const ok = (output: unknown, next: string | undefined, extra: Partial<Outcome> = {}): Outcome => ({
      output,
      next,
      tier: null,
      tokens: 0,
      costUsd: 0,
      events: [],
      outcome: "ok",
      ...extra
    })

    const remainingTokens = () => limits.tokens === undefined ? undefined : Math.max(0, limits.tokens - tokens)

    /** The validate step's history of rejected values (for oscillation detection), per journal base id. */
    const rejected = new Map<string, Array<string>>()

    /** One attempt at a step (not tool steps: the registry retries those itself). */
    const attemptStep = (
      step: WorkflowPlan.Step,
      scope: WorkflowPlan.Scope,
      journalId: string,
      visit: number
    ): Effect.Effect<Outcome, Failure | Interrupt, Database> => {
      const kind = step.kind
      switch (kind._tag) {
        case "tool":
          return Effect.gen(function*() {
            const input = yield* evaluate(kind.call.input, scope, step.id)
            const called = yield* tools.call(kind.call.tool, input, {
              tenantId: run.tenant_id,
              runId: run.id,
              stepId: journalId,
              sessionId: run.session_id,
              attempt
            }, { timeout: step.timeout, retry: step.retry ?? (step.onError._tag === "Retry" ? defaultRetry : undefined) }).pipe(
              Effect.either
            )
            const key = `${run.id}:${journalId}`
            if (Either.isLeft(called)) {
              const failure = failureOf(called.left)
              return yield* Effect.fail<Failure & { readonly events: ReadonlyArray<typeof EventEnvelope.Encoded> }>({
                ...failure,
                events: toolEvents(journalId, kind.call.tool, input, key, Either.left(failure))
              })
            }
            const compensation = step.compensate !== undefined
              ? { tool: step.compensate.tool, input: yield* evaluate(step.compensate.input, { ...scope, steps: { ...scope.steps, [step.id]: called.right.output } }, step.id) }
              : tools.compensation(kind.call.tool, input, called.right.output)
            if (compensation !== undefined) pendingCompensation.set(journalId, compensation)
            return ok(called.right.output, step.next, {
              events: toolEvents(journalId, kind.call.tool, input, called.right.idempotencyKey, Either.right(called.right.output))
            })
          })
        case "retrieve":
          return Effect.gen(function*() {
            const query = asText(yield* evaluate(kind.query, scope, step.id))
            const found = yield* tools.call("knowledge.search", { query, top_k: kind.topK, ...(kind.tags === undefined ? {} : { tags: kind.tags }) }, {
              tenantId: run.tenant_id,
              runId: run.id,
              stepId: journalId,
              sessionId: run.session_id,
              attempt
            }, { timeout: step.timeout, retry: RetryPolicy.none }).pipe(Effect.mapError((e) => failureOf(e, e._tag !== "ToolInputInvalid")))
            return ok(found.output, step.next)
          })
        case "llm":
          return Effect.gen(function*() {
            const llm = yield* needGateway(step)
            const prompt = asText(yield* evaluate(kind.prompt, scope, step.id))
            const system = kind.system === undefined ? undefined : asText(yield* evaluate(kind.system, scope, step.id))
            const passages = kind.passages === undefined ? [] : toPassages(yield* evaluate(kind.passages, scope, step.id))
            const budget = remainingTokens()
            const messages: Array<LlmMessage> = [
              ...(system === undefined ? [] : [new LlmMessage({ role: "system", content: system })]),
              new LlmMessage({ role: "user", content: prompt })
            ]
            const response = yield* llm.generate(
              new GenerateRequest({
                tenantId: run.tenant_id,
                tier: kind.tier,
                messages: [messages[0]!, ...messages.slice(1)],
                passages,
                ...(kind.outputSchema === undefined ? {} : { outputSchema: kind.outputSchema }),
                ...(kind.maxOutputTokens === undefined ? {} : { maxOutputTokens: kind.maxOutputTokens }),
                ...(budget === undefined ? {} : { tokenBudget: budget }),
                context: { ...context, workflow: path.join(" > ") },
                idempotencyKey: `${run.id}:${journalId}`,
                ...(run.session_id === null ? {} : { stream: { sessionId: run.session_id, runId: run.id, stepId: journalId } })
              })
            ).pipe(
              Effect.mapError((e) =>
                e._tag === "TokenBudgetExceeded"
                  ? failureOf(new BudgetExceeded({ budget: "tokens", limit: limits.tokens ?? e.budget, used: tokens + e.needed }))
                  : failureOf(e, e._tag === "LlmError" && (e.reason === "timeout" || e.reason === "unavailable" || e.reason === "rate_limited"))
              )
            )
            return ok(
              {
                text: response.text,
                json: response.json ?? null,
                answered: response.answered,
                citations: response.citations,
                tier: response.tier,
                model: response.model,
                tokens: response.usage.inputTokens + response.usage.outputTokens,
                cost_usd: response.costUsd
              },
              step.next,
              {
                tier: response.tier,
                tokens: response.usage.inputTokens + response.usage.outputTokens,
                costUsd: response.costUsd
              }
            )
          })
        case "route":
          return Effect.gen(function*() {
            const llm = yield* needGateway(step)
            const text = asText(yield* evaluate(kind.text, scope, step.id))
            const labels = kind.labels.map((l) => new LlmLabel({ name: l.name, description: l.description, examples: l.examples }))
            const response = yield* llm.classify(
              new ClassifyRequest({ tenantId: run.tenant_id, tier: kind.tier, text, labels: [labels[0]!, ...labels.slice(1)] })
            ).pipe(Effect.mapError((e) => failureOf(e, e.reason === "timeout" || e.reason === "unavailable" || e.reason === "rate_limited")))
            const chosen = kind.labels.find((l) => l.name === response.label)
            return ok(
              { intent: response.label, confidence: response.confidence, tier: response.tier },
              chosen?.next ?? step.next,
              {
                tier: response.tier,
                tokens: response.usage.inputTokens + response.usage.outputTokens,
                costUsd: response.costUsd
              }
            )
          })
        case "branch":
          return Effect.gen(function*() {
            for (const [index, branch] of kind.branches.entries()) {
              if (yield* evaluate(branch.when, scope, step.id).pipe(Effect.map(Boolean))) {
                return ok({ taken: branch.next, branch: index }, branch.next)
              }
            }
            const next = kind.otherwise ?? step.next
            return ok({ taken: next ?? null, branch: "default" }, next)
          })
        case "validate":
          return Effect.gen(function*() {
            const value = yield* evaluate(kind.value, scope, step.id)
            const results: Array<Gates.GateResult> = []
            for (const gate of kind.gates) {
              switch (gate._tag) {
                case "JsonSchema":
                  results.push(Gates.jsonSchema(gate.schema, value))
                  break
                case "ScoreThreshold":
                  results.push(Gates.scoreThreshold(yield* evaluate(gate.score, scope, step.id), gate.min))
                  break
                case "Factuality":
                  results.push(Gates.factuality(value, toPassages(yield* evaluate(gate.passages, scope, step.id)).map((p) => p.text), gate.min))
                  break
                case "Critic": {
                  const llm = yield* needGateway(step)
                  const verdict = yield* llm.classify(
                    new ClassifyRequest({
                      tenantId: run.tenant_id,
                      tier: gate.tier,
                      text: `${gate.criteria}\n\n${asText(value)}`,
                      labels: [
                        new LlmLabel({ name: "pass", description: `meets: ${gate.criteria}` }),
                        new LlmLabel({ name: "fail", description: `does not meet: ${gate.criteria}` })
                      ]
                    })
                  ).pipe(Effect.mapError((e) => failureOf(e)))
                  results.push({ gate: "critic", passed: verdict.label === "pass", detail: `${verdict.label} (${verdict.confidence})` })
                }
              }
            }
            const passed = results.every((r) => r.passed)
            const fingerprint = JSON.stringify(value)
            const failures = results.filter((r) => !r.passed).map((r) => `${r.gate}: ${r.detail}`)
            const output = { passed, failures, gates: results, repairs: visit - 1, value }
            const router = yield* Effect.serviceOption(RouterPort)
            if (Option.isSome(router)) yield* router.value.observe({ tenantId: run.tenant_id, runId: run.id, passed, repairs: visit - 1 })
            if (passed) return ok(output, step.next)
            const base = journalId.replace(/#\d+$/, "")
            const history = rejected.get(base) ?? []
            const failedGates = failures.join("; ")
            if (history.includes(fingerprint)) {
              return yield* Effect.fail(failureOf(
                new RepairLoopDetected({ step: step.id, repairs: visit - 1, reason: "the repair came back to an output already rejected" })
              ))
            }
            rejected.set(base, [...history, fingerprint])
            if (kind.repair !== undefined && visit - 1 < kind.repair.max) {
              return ok(output, kind.repair.step, { outcome: "repair" })
            }
            return yield* Effect.fail(failureOf(
              new RepairLoopDetected({
                step: step.id,
                repairs: visit - 1,
                reason: kind.repair === undefined ? `gates failed: ${failedGates}` : `no repairs left; gates failed: ${failedGates}`
              })
            ))
          })
        case "workflow":
          return Effect.gen(function*() {
            const input = yield* evaluate(kind.input, scope, step.id)
            const child = yield* plans.get(run.tenant_id, kind.workflow).pipe(Effect.mapError((e) => failureOf(e)))
            path.push(child.name)
            const output = yield* runPlan(child, `${journalId}/`, input, scope.context, depthOf(journalId) + 1)
            return ok(output, step.next)
          })
        case "wait":
          return Effect.gen(function*() {
            const timeout = durationOf(yield* evaluate(kind.timeout, scope, step.id))
            if (timeout === undefined) {
              return yield* Effect.fail<Failure>({ code: "expression_error", message: `step ${step.id}: timeout is not a duration`, retryable: false })
            }
            // The wait began when the journal last moved (its previous step), also before a crash.
            const waited = (yield* Clock.currentTimeMillis) - lastJournaledMs
            const payload = yield* host.awaitSignal(kind.signal).pipe(
              Effect.timeoutFail({
                duration: Duration.millis(Math.max(0, Duration.toMillis(timeout) - waited)),
                onTimeout: () => new WaitTimedOut({ step: step.id, signal: kind.signal, timeoutMs: Duration.toMillis(timeout) })
              }),
              Effect.catchTag("WaitTimedOut", (timedOut) =>
                kind.onTimeout === undefined ? Effect.fail(failureOf(timedOut)) : Effect.succeed(undefined))
            )
            return payload === undefined
              ? ok({ timed_out: true }, kind.onTimeout, { outcome: "timed_out" })
              : ok(payload, step.next)
          })
        case "respond":
          return Effect.gen(function*() {
            const text = asText(yield* evaluate(kind.answer, scope, step.id))
            const citations = kind.citations === undefined ? [] : toCitations(yield* evaluate(kind.citations, scope, step.id))
            const escalated = kind.escalated === undefined ? false : Boolean(yield* evaluate(kind.escalated, scope, step.id))
            const output = encodeAnswer(
              new Answer({
                answer: text,
                citations,
                tier,
                escalated,
                workflow: path.join(" > "),
                usage: { tokens, costUsd }
              })
            )
            answer = output
            return ok(output, step.next)
          })
      }
    }

    const depthOf = (journalId: string) => journalId.split("/").length - 1

    /** Compensations registered by steps in flight, moved to `compensations` once their row is written. */
    const pendingCompensation = new Map<string, { readonly tool: string; readonly input: unknown }>()

    const checkBudgets = Effect.suspend((): Effect.Effect<void, RunStopped> => {
      if (limits.tokens !== undefined && tokens > limits.tokens) {
        return Effect.fail(new RunStopped({ failure: failureOf(new BudgetExceeded({ budget: "tokens", limit: limits.tokens, used: tokens })) }))
      }
      if (limits.costUsd !== undefined && costUsd > limits.costUsd) {
        return Effect.fail(new RunStopped({ failure: failureOf(new BudgetExceeded({ budget: "cost_usd", limit: limits.costUsd, used: costUsd })) }))
      }
      return Effect.void
    })

    /** Runs one step with its timeout, retry policy and the run's wall deadline; answers its outcome or its failure. */
    const executeStep = (step: WorkflowPlan.Step, scope: WorkflowPlan.Scope, journalId: string, visit: number) =>
      Effect.gen(function*() {
        if (step.maxVisits !== undefined && visit > step.maxVisits) {
          return yield* Effect.fail(failureOf(
            new StepFailed({ step: step.id, code: "max_visits", reason: `executed more than its max_visits (${step.maxVisits}) times` })
          ))
        }
        const isTool = step.kind._tag === "tool"
        let attemptEffect = attemptStep(step, scope, journalId, visit)
        if (!isTool && step.timeout !== undefined) {
          const timeout = step.timeout
          attemptEffect = Timeout.failAfter(
            attemptEffect,
            timeout,
            (): Failure => ({ ...failureOf(new StepTimeout({ step: step.id, timeoutMs: Duration.toMillis(timeout) })), retryable: true })
          )
        }
        const policy = isTool ? RetryPolicy.none : step.retry ?? (step.onError._tag === "Retry" ? defaultRetry : RetryPolicy.none)
        const retried = RetryPolicy.retry(
          attemptEffect,
          policy,
          (e: Failure | Escalation | Interrupt) => !("_tag" in e) && e.retryable
        )
        if (limits.wallMs === undefined) return yield* retried
        const now = yield* Clock.currentTimeMillis
        const remaining = limits.wallMs - (now - startedMs)
        if (remaining <= 0) {
          return yield* new RunStopped({ failure: failureOf(new BudgetExceeded({ budget: "wall_ms", limit: limits.wallMs, used: now - startedMs })) })
        }
        return yield* Timeout.failAfter(
          retried,
          Duration.millis(remaining),
          () => new RunStopped({ failure: failureOf(new BudgetExceeded({ budget: "wall_ms", limit: limits.wallMs!, used: limits.wallMs! })) })
        )
      })

    /** Walks a plan from its start; answers its answer (its respond output) or its last step's output. */
    const runPlan = (
      plan: WorkflowPlan.Plan,
      prefix: string,
      input: unknown,
      ctx: Readonly<Record<string, unknown>>,
      depth: number
    ): Effect.Effect<unknown, Failure | Interrupt, Database> =>
      Effect.gen(function*() {
        if (depth > maxDepth) {
          return yield* Effect.fail(failureOf(new StepFailed({ step: prefix, code: "workflow_too_deep", reason: `sub-workflows nest deeper than ${maxDepth}` })))
        }
        const outputs: Record<string, unknown> = {}
        const visits = new Map<string, number>()
        let current: string | undefined = plan.start
        let last: unknown = null
        let planAnswer: unknown = undefined
        while (current !== undefined) {
          const step = plan.steps.get(current)
          if (step === undefined) {
            return yield* new RunStopped({ failure: { code: "unknown_step", message: `workflow ${plan.name} has no step ${current}`, retryable: false } })
          }
          const visit = (visits.get(step.id) ?? 0) + 1
          visits.set(step.id, visit)
          const journalId = `${prefix}${step.id}${visit > 1 ? `#${visit}` : ""}`
          const scope: WorkflowPlan.Scope = {
            input,
            steps: outputs,
            context: ctx,
            run: { id: run.id, tenant_id: run.tenant_id, workflow: plan.name, session_id: run.session_id, user_id: run.user_id }
          }
          stepsTaken++
          const recorded = rows.get(journalId)
          let next: string | undefined
          let output: unknown
          if (recorded !== undefined) {
            // Replay: the step ran before; its row is the truth.
            output = recorded.output
            next = recorded.next_step ?? undefined
            tokens += recorded.tokens
            costUsd += recorded.cost_usd
            if (recorded.tier !== null) tier = recorded.tier
            if (step.kind._tag === "workflow") path.push(step.kind.workflow)
            if (step.kind._tag === "validate" && recorded.outcome === "repair") {
              const base = journalId.replace(/#\d+$/, "")
              rejected.set(base, [...(rejected.get(base) ?? []), JSON.stringify(asRecord(recorded.output).value)])
            }
            if (step.kind._tag === "respond") answer = recorded.output
            if (recorded.status === "failed") {
              if (recorded.outcome === "escalate") return yield* new Escalation({ step: step.id, reason: recorded.error ?? "escalated" })
              if (recorded.outcome === "failed") {
                return yield* new RunStopped({ failure: { code: asText(asRecord(recorded.output).code), message: recorded.error ?? "step failed", retryable: false } })
              }
            } else if (step.kind._tag === "tool") {
              const kind = step.kind
              const stepInput = Either.getOrUndefined(kind.call.input(scope))
              const compensation = step.compensate !== undefined
                ? Either.getOrUndefined(step.compensate.input({ ...scope, steps: { ...outputs, [step.id]: output } }))
                : undefined
              const pending = step.compensate !== undefined
                ? compensation === undefined ? undefined : { tool: step.compensate.tool, input: compensation }
                : tools.compensation(kind.call.tool, stepInput, output)
              if (pending !== undefined) compensations.push({ journalId, ...pending })
            }
          } else {
            if (stepsTaken > maxSteps) {
              return yield* new RunStopped({ failure: failureOf(new StepLimitExceeded({ limit: maxSteps })) })
            }
            const startedAt = yield* Clock.currentTimeMillis
            const result = yield* executeStep(step, scope, journalId, visit).pipe(
              Effect.catchIf((e): e is Failure & { readonly events?: ReadonlyArray<typeof EventEnvelope.Encoded> } => !("_tag" in e), (e) => Effect.succeed(e))
            )
            const atTop = depth === 0
            if ("code" in result) {
              const failure = result
              const events = "events" in failure && failure.events !== undefined ? failure.events : []
              const failed = (outcome: string, next: string | undefined, end: RunJournal.RunEnd | undefined) =>
                write(journalId, step.kind._tag, "failed", {
                  output: { code: failure.code, error: failure.message },
                  next,
                  tier: null,
                  tokens: 0,
                  costUsd: 0,
                  events,
                  outcome
                }, startedAt, failure.message, end)
              switch (step.onError._tag) {
                case "Continue":
                  yield* failed("continue", step.next, atTop && step.next === undefined ? { status: "completed", output: answer ?? null, error: null } : undefined)
                  output = { code: failure.code, error: failure.message }
                  next = step.next
                  break
                case "Fallback": {
                  const fallback = step.onError._tag === "Fallback" ? step.onError.step : undefined
                  yield* failed("fallback", fallback, undefined)
                  output = { code: failure.code, error: failure.message }
                  next = fallback
                  break
                }
                case "Escalate":
                  yield* failed("escalate", undefined, undefined)
                  return yield* new Escalation({ step: step.id, reason: failure.message })
                default:
                  yield* failed("failed", undefined, undefined)
                  return yield* new RunStopped({ failure })
              }
            } else {
              tokens += result.tokens
              costUsd += result.costUsd
              if (result.tier !== null) tier = result.tier
              const budgetStop = yield* Effect.either(checkBudgets)
              const end: RunJournal.RunEnd | undefined = atTop && result.next === undefined && Either.isRight(budgetStop)
                ? { status: "completed", output: step.kind._tag === "respond" ? result.output : answer ?? result.output, error: null }
                : undefined
              yield* write(journalId, step.kind._tag, "completed", result, startedAt, null, end)
              const pending = pendingCompensation.get(journalId)
              if (pending !== undefined) {
                pendingCompensation.delete(journalId)
                compensations.push({ journalId, ...pending })
              }
              if (Either.isLeft(budgetStop)) return yield* budgetStop.left
              output = result.output
              next = result.next
            }
          }
          outputs[step.id] = output
          last = output
          if (step.kind._tag === "respond") planAnswer = output
          current = next
        }
        return planAnswer ?? last
      })

    /** Journals a compensation; answers whether it succeeded. */
    const compensate = (pending: Pending, end: RunJournal.RunEnd | undefined) =>
      Effect.gen(function*() {
        const journalId = `compensate:${pending.journalId}`
        if (rows.has(journalId)) return rows.get(journalId)!.status === "completed"
        const startedAt = yield* Clock.currentTimeMillis
        const called = yield* tools.call(pending.tool, pending.input, {
          tenantId: run.tenant_id,
          runId: run.id,
          stepId: journalId,
          sessionId: run.session_id,
          attempt
        }, { retry: defaultRetry }).pipe(Effect.either)
        const key = `${run.id}:${journalId}`
        const result: Either.Either<unknown, Failure> = Either.isRight(called) ? Either.right(called.right.output) : Either.left(failureOf(called.left))
        yield* write(journalId, "compensation", Either.isRight(result) ? "completed" : "failed", {
          output: Either.isRight(result) ? result.right : { code: result.left.code, error: result.left.message },
          next: undefined,
          tier: null,
          tokens: 0,
          costUsd: 0,
          events: toolEvents(journalId, pending.tool, pending.input, key, result),
          outcome: Either.isRight(result) ? "compensated" : "failed"
        }, startedAt, Either.isLeft(result) ? result.left.message : null, end)
        return Either.isRight(result)
      })

    const stop = (failure: Failure) =>
      Effect.gen(function*() {
        const undo = [...compensations].reverse()
        if (undo.length === 0) {
          yield* RunJournal.finish(run, "failed", `${failure.code}: ${failure.message}`)
          return "failed" as const
        }
        let allDone = true
        for (const [i, pending] of undo.entries()) {
          const lastOne = i === undo.length - 1
          const done: boolean = yield* compensate(
            pending,
            lastOne && allDone ? { status: "compensated", output: null, error: `${failure.code}: ${failure.message}` } : undefined
          )
          allDone = allDone && done
        }
        if (!allDone) {
          yield* RunJournal.finish(run, "failed", `${failure.code}: ${failure.message} (a compensation failed)`)
          return "failed" as const
        }
        return "compensated" as const
      })

    const escalate = (from: Escalation) =>
      Effect.gen(function*() {
        const journalId = `escalate:${from.step}`
        if (rows.has(journalId)) return "completed" as const
        const startedAt = yield* Clock.currentTimeMillis
        const input = {
          reason: from.reason,
          subject: `Escalated: ${run.workflow}`,
          body: asText(runInput.message)
        }
        const called = yield* tools.call("tickets.escalate", input, {
          tenantId: run.tenant_id,
          runId: run.id,
          stepId: journalId,
          sessionId: run.session_id,
          attempt
        }, { retry: defaultRetry }).pipe(Effect.either)
        const key = `${run.id}:${journalId}`
        if (Either.isLeft(called)) {
          const failure = failureOf(called.left)
          yield* write(journalId, "tool", "failed", {
            ...ok({ code: failure.code, error: failure.message }, undefined),
            events: toolEvents(journalId, "tickets.escalate", input, key, Either.left(failure)),
            outcome: "failed"
          }, startedAt, failure.message, undefined)
          return yield* stop(failure)
        }
        const output = encodeAnswer(
          new Answer({
            answer: "I have passed your conversation to a member of our team, who will get back to you shortly.",
            citations: [],
            tier,
            escalated: true,
            workflow: path.join(" > "),
            usage: { tokens, costUsd }
          })
        )
        yield* write(journalId, "tool", "completed", {
          ...ok(called.right.output, undefined),
          events: toolEvents(journalId, "tickets.escalate", input, key, Either.right(called.right.output))
        }, startedAt, null, { status: "completed", output, error: null })
        return "completed" as const
      })

    if (Either.isLeft(found)) {
      yield* RunJournal.finish(run, "failed", `${found.left.code}: ${found.left.message}`)
      return "failed" as const
    }
    return yield* runPlan(found.right, "", run.input, context, 0).pipe(
      Effect.as("completed" as const),
      Effect.catchIf((e): e is Failure => !("_tag" in e), (failure) => stop(failure)),
      Effect.catchTag("RunStopped", (stopped) => stop(stopped.failure)),
      Effect.catchTag("Escalation", escalate)
    )
  })
