/**
 * Compiles a validated workflow document (domain `Workflow`) to the plan the executor walks
 * (WorkflowPlan): templates and expressions are parsed once into functions of the run's scope,
 * durations and retry blocks become Effect values, `on_error` strings become tags. A document the
 * loader validated always compiles; `CompileError` names the step and field of one that does not.
 */
import type * as Workflow from "@tessera/domain/Workflow"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Expression from "./Expression.js"
import type { RetryPolicy } from "./RetryPolicy.js"
import type * as WorkflowPlan from "./WorkflowPlan.js"

export class CompileError extends Data.TaggedError("CompileError")<{
  readonly workflow: string
  readonly path: string
  readonly reason: string
}> {
  override get message() {
    return `workflow ${this.workflow}: ${this.path}: ${this.reason}`
  }
}

type Compiled<A> = Either.Either<A, CompileError>

const isRecord = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** The plan, or where the document does not compile (never, for one the loader validated). */
export const compile = (workflow: Workflow.Workflow): Compiled<WorkflowPlan.Plan> =>
  Either.gen(function*() {
    const fail = (path: string, reason: string) => Either.left(new CompileError({ workflow: workflow.name, path, reason }))

    /** A template: one `{{ expression }}` gives its value, anything else the rendered text. */
    const template = (text: string, path: string): Compiled<WorkflowPlan.Value> =>
      Either.match(Expression.parseTemplate(text), {
        onLeft: (error) => fail(path, `${error.message} at offset ${error.offset}`),
        onRight: (parsed) => Either.right((scope: WorkflowPlan.Scope) => Either.right(Expression.renderValue(parsed, scope)))
      })

    /** Text: the template rendered as a string. */
    const text = (source: string, path: string): Compiled<WorkflowPlan.Value> =>
      Either.match(Expression.parseTemplate(source), {
        onLeft: (error) => fail(path, `${error.message} at offset ${error.offset}`),
        onRight: (parsed) => Either.right((scope: WorkflowPlan.Scope) => Either.right(Expression.render(parsed, scope)))
      })

    /** An expression (a bare one, or one wrapped in `{{ }}`). */
    const expression = (source: string, path: string): Compiled<WorkflowPlan.Value> => {
      const trimmed = source.trim()
      return trimmed.startsWith("{{")
        ? template(trimmed, path)
        : Either.match(Expression.parse(trimmed), {
          onLeft: (error) => fail(path, `${error.message} at offset ${error.offset}`),
          onRight: (parsed) => Either.right((scope: WorkflowPlan.Scope) => Either.right(Expression.evaluate(parsed, scope)))
        })
    }

    /** A condition: the expression's truthiness. */
    const condition = (source: string, path: string): Compiled<WorkflowPlan.Value> =>
      Either.map(expression(source, path), (value) => (scope: WorkflowPlan.Scope) => Either.map(value(scope), Expression.truthy))

    /** A tool input: strings are templates, lists and maps are compiled member by member. */
    const inputValue = (value: unknown, path: string): Compiled<WorkflowPlan.Value> => {
      if (typeof value === "string") return template(value, path)
      if (Array.isArray(value)) {
        const items: Array<WorkflowPlan.Value> = []
        for (const [i, item] of value.entries()) {
          const compiled = inputValue(item, `${path}[${i}]`)
          if (Either.isLeft(compiled)) return compiled
          items.push(compiled.right)
        }
        return Either.right((scope) => Either.all(items.map((item) => item(scope))))
      }
      if (isRecord(value)) {
        const entries: Array<readonly [string, WorkflowPlan.Value]> = []
        for (const [key, member] of Object.entries(value)) {
          const compiled = inputValue(member, `${path}.${key}`)
          if (Either.isLeft(compiled)) return compiled
          entries.push([key, compiled.right])
        }
        return Either.right((scope) =>
          Either.map(
            Either.all(entries.map(([key, member]) => Either.map(member(scope), (v) => [key, v] as const))),
            (pairs) => Object.fromEntries(pairs)
          )
        )
      }
      return Either.right(() => Either.right(value))
    }

    const duration = (input: Workflow.Retry["base"], path: string): Compiled<Duration.Duration> => {
      const decoded = typeof input === "number" ? Option.some(Duration.millis(input)) : Duration.decodeUnknown(input)
      return Option.match(decoded, { onNone: () => fail(path, `${JSON.stringify(input)} is not a duration`), onSome: Either.right })
    }

    const retry = (block: Workflow.Retry, path: string): Compiled<RetryPolicy> =>
      Either.gen(function*() {
        return {
          times: block.times,
          backoff: block.backoff,
          base: yield* duration(block.base, `${path}.base`),
          max: yield* duration(block.max, `${path}.max`),
          jitter: block.jitter === true ? 0.2 : block.jitter === false ? 0 : block.jitter
        }
      })

    const onError = (value: string): WorkflowPlan.OnError =>
      value.startsWith("fallback:")
        ? { _tag: "Fallback", step: value.slice("fallback:".length) }
        : value === "retry"
        ? { _tag: "Retry" }
        : value === "escalate"
        ? { _tag: "Escalate" }
        : value === "continue"
        ? { _tag: "Continue" }
        : { _tag: "Fail" }

    const optional = <A>(value: string | undefined, f: (v: string) => Compiled<A>): Compiled<A | undefined> =>
      value === undefined ? Either.right(undefined) : f(value)

    const kind = (step: Workflow.Step, at: string): Compiled<WorkflowPlan.Kind> =>
      Either.gen(function*() {
        switch (step.kind) {
          case "tool":
            return { _tag: "tool", call: { tool: step.tool, input: yield* inputValue(step.input, `${at}.input`) } }
          case "retrieve":
            return {
              _tag: "retrieve",
              query: yield* text(step.query, `${at}.query`),
              topK: step.top_k,
              ...(step.tags === undefined ? {} : { tags: step.tags })
            }
          case "llm":
            return {
              _tag: "llm",
              prompt: yield* text(step.prompt, `${at}.prompt`),
              system: yield* optional(step.system, (s) => text(s, `${at}.system`)),
              tier: step.tier,
              outputSchema: step.output_schema,
              passages: yield* optional(step.passages, (p) => template(p, `${at}.passages`)),
              maxOutputTokens: step.max_output_tokens
            }
          case "route":
            return {
              _tag: "route",
              text: yield* text(step.text, `${at}.text`),
              tier: step.tier,
              labels: step.routes.map((route) => ({
                name: route.intent,
                description: route.description,
                examples: route.examples,
                next: route.next
              }))
            }
          case "branch": {
            const branches: Array<{ readonly when: WorkflowPlan.Value; readonly next: string }> = []
            for (const [i, branch] of step.branches.entries()) {
              branches.push({ when: yield* condition(branch.when, `${at}.branches[${i}].when`), next: branch.next })
            }
            return { _tag: "branch", branches, otherwise: step.default }
          }
          case "validate": {
            const gates: Array<WorkflowPlan.Gate> = []
            for (const [i, gate] of step.gates.entries()) {
              const path = `${at}.gates[${i}]`
              if ("json_schema" in gate) gates.push({ _tag: "JsonSchema", schema: gate.json_schema })
              else if ("score_threshold" in gate) {
                gates.push({
                  _tag: "ScoreThreshold",
                  score: yield* expression(gate.score_threshold.score, `${path}.score_threshold.score`),
                  min: gate.score_threshold.min
                })
              } else if ("factuality" in gate) {
                gates.push({
                  _tag: "Factuality",
                  passages: yield* template(gate.factuality.passages, `${path}.factuality.passages`),
                  min: gate.factuality.min
                })
              } else gates.push({ _tag: "Critic", criteria: gate.critic.criteria, tier: gate.critic.tier })
            }
            return { _tag: "validate", value: yield* template(step.value, `${at}.value`), gates, repair: step.repair }
          }
          case "workflow":
            return { _tag: "workflow", workflow: step.workflow, input: yield* inputValue(step.input, `${at}.input`) }
          case "wait": {
            const timeout = yield* duration(step.timeout, `${at}.timeout`)
            return { _tag: "wait", signal: step.signal, timeout: () => Either.right(Duration.toMillis(timeout)), onTimeout: step.on_timeout }
          }
          case "respond":
            return {
              _tag: "respond",
              answer: yield* text(step.answer, `${at}.answer`),
              citations: yield* optional(step.citations, (c) => template(c, `${at}.citations`)),
              escalated: typeof step.escalated === "boolean"
                ? ((flag: boolean) => () => Either.right(flag))(step.escalated)
                : yield* optional(step.escalated, (e) => condition(e, `${at}.escalated`))
            }
        }
      })

    const steps = new Map<string, WorkflowPlan.Step>()
    for (const [i, step] of workflow.steps.entries()) {
      const at = `steps[${i}]`
      steps.set(step.id, {
        id: step.id,
        kind: yield* kind(step, at),
        next: step.next,
        timeout: step.timeout === undefined ? undefined : yield* duration(step.timeout, `${at}.timeout`),
        retry: step.retry === undefined ? undefined : yield* retry(step.retry, `${at}.retry`),
        onError: onError(step.on_error),
        compensate: step.compensate === undefined
          ? undefined
          : { tool: step.compensate.tool, input: yield* inputValue(step.compensate.input, `${at}.compensate.input`) },
        ...(step.max_visits === undefined ? {} : { maxVisits: step.max_visits })
      })
    }
    return {
      name: workflow.name,
      version: workflow.version,
      start: workflow.start,
      steps,
      budgets: { wallMs: workflow.budgets.wall_ms, tokens: workflow.budgets.tokens, costUsd: workflow.budgets.cost_usd },
      ...(workflow.max_steps === undefined ? {} : { maxSteps: workflow.max_steps })
    }
  })
