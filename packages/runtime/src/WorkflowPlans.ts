/**
 * Where the executor gets a run's plan: by tenant and workflow name. `layerStatic` serves a fixed
 * set of plans (tests, benchmarks); `layerWorkflows` compiles loaded workflow documents
 * (WorkflowLoader → WorkflowCompiler). Both also serve the built-in `echo` diagnostic plan.
 */
import { WorkflowNotFound } from "@tessera/domain/RunError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as EchoWorkflow from "./EchoWorkflow.js"
import type { Workflow } from "@tessera/domain/Workflow"
import * as Either from "effect/Either"
import * as WorkflowCompiler from "./WorkflowCompiler.js"
import type { Plan } from "./WorkflowPlan.js"

export class WorkflowPlans extends Context.Tag("@tessera/runtime/WorkflowPlans")<WorkflowPlans, {
  readonly get: (tenantId: string, name: string) => Effect.Effect<Plan, WorkflowNotFound>
}>() {}

/** These plans (and `echo`), for every tenant. */
export const layerStatic = (plans: ReadonlyArray<Plan>): Layer.Layer<WorkflowPlans> => {
  const byName = new Map<string, Plan>([[EchoWorkflow.name, EchoWorkflow.plan], ...plans.map((p) => [p.name, p] as const)])
  return Layer.succeed(WorkflowPlans, {
    get: (_tenantId, name) => {
      const plan = byName.get(name)
      return plan === undefined ? Effect.fail(new WorkflowNotFound({ workflow: name })) : Effect.succeed(plan)
    }
  })
}

/**
 * These loaded (validated) workflows, compiled once, for every tenant. A workflow that does not
 * compile is a defect of the loader's validation: the layer dies naming it.
 */
export const layerWorkflows = (workflows: ReadonlyArray<Workflow>): Layer.Layer<WorkflowPlans> =>
  Layer.suspend(() => {
    const plans: Array<Plan> = []
    for (const workflow of workflows) {
      const compiled = WorkflowCompiler.compile(workflow)
      if (Either.isLeft(compiled)) return Layer.die(compiled.left)
      plans.push(compiled.right)
    }
    return layerStatic(plans)
  })
