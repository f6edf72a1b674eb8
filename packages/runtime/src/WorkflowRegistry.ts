/**
 * The workflows a node serves.
 *
 * - The shared set: `registry.yaml` and the files it lists in `WORKFLOWS_DIR` (default: the
 *   repository's `workflows/`, found from this source file, so any working directory works).
 *   Loaded and checked when the layer starts; any diagnostic fails the start with every problem
 *   listed, so a node never runs a workflow from an invalid set.
 * - Tenant overlays: a tenant's version of a shared workflow (`extends:` it, replacing named
 *   steps), stored in `workflow_overlays` (migration 0004). `putOverlay` checks an overlay against
 *   the shared set before storing it; every node loads all overlays when it starts and again every
 *   `WORKFLOW_OVERLAY_REFRESH` (default 30 seconds), so an upload reaches the other nodes within
 *   that. An overlay that no longer validates (the shared workflow it edits changed) is not
 *   served: it is logged with its diagnostics and the tenant runs the shared workflow.
 *
 * Lookups (`get`, `list`, `triggers`) are answered from memory.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import type { PlatformError } from "@effect/platform/Error"
import type { SqlError } from "@effect/sql/SqlError"
import { WorkflowNotFound } from "@tessera/domain/RunError"
import { type Diagnostic, type Workflow, WorkflowInvalid } from "@tessera/domain/Workflow"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { fileURLToPath } from "node:url"
import { Database } from "./Database.js"
import * as EchoWorkflow from "./EchoWorkflow.js"
import { compile } from "./WorkflowCompiler.js"
import * as WorkflowLoader from "./WorkflowLoader.js"
import type { Plan } from "./WorkflowPlan.js"
import { WorkflowPlans } from "./WorkflowPlans.js"

/** A workflow as the registry lists it, with the intent labels that start it. */
export interface Entry {
  readonly name: string
  readonly triggers: ReadonlyArray<string>
  readonly workflow: Workflow
}

/** An intent label for classification: the workflow it starts and example phrases. */
export interface Trigger {
  readonly intent: string
  readonly workflow: string
  readonly examples: ReadonlyArray<string>
}

/** A tenant's stored overlay. */
export interface Overlay {
  readonly name: string
  readonly source: string
  readonly updatedAt: Date
}

export class WorkflowRegistry extends Context.Tag("@tessera/runtime/WorkflowRegistry")<WorkflowRegistry, {
  /** The tenant's version of the workflow: its overlay when it has a valid one, the shared one otherwise. */
  readonly get: (tenantId: string, name: string) => Effect.Effect<Workflow, WorkflowNotFound>
  /** The registry's workflows, in `registry.yaml` order (the tenant's versions when a tenant is given). */
  readonly list: (tenantId?: string) => ReadonlyArray<Entry>
  /** Every intent label of the registry (with its workflow's example phrases), for classification. */
  readonly triggers: () => ReadonlyArray<Trigger>
  /**
   * Checks an overlay against the shared set and stores it as the tenant's version of the
   * workflow it names (replacing an earlier one); this node serves it at once.
   */
  readonly putOverlay: (tenantId: string, source: WorkflowLoader.Source) => Effect.Effect<Workflow, WorkflowInvalid | SqlError>
  /** The check `putOverlay` makes, storing nothing: the overlay's workflow, or every problem found. */
  readonly checkOverlay: (source: WorkflowLoader.Source) => Effect.Effect<Workflow, WorkflowInvalid>
  /** Deletes the tenant's overlay of a workflow; false when it had none. */
  readonly removeOverlay: (tenantId: string, name: string) => Effect.Effect<boolean, SqlError>
  /** The tenant's stored overlays. */
  readonly overlays: (tenantId: string) => Effect.Effect<ReadonlyArray<Overlay>, SqlError>
  /** Reloads every tenant's overlays from the table (what the periodic refresh does). */
  readonly refresh: Effect.Effect<void, SqlError>
}>() {}

/** The repository's `workflows/` directory. */
export const defaultDir: string = fileURLToPath(new URL("../../../workflows/", import.meta.url))

export interface Options {
  readonly dir: string
  /** Tool names besides the built-in ones that steps may call. */
  readonly tools?: ReadonlyArray<string>
  /** How often overlays are reloaded from the table (default 30 seconds). */
  readonly refresh?: Duration.DurationInput
}

/** The shared set: the registry's entries and their validated workflows. */
export interface Shared {
  readonly entries: ReadonlyArray<{ readonly name: string; readonly triggers: ReadonlyArray<string> }>
  readonly workflows: ReadonlyMap<string, Workflow>
}

const read = (fs: FileSystem.FileSystem, dir: string, file: string) =>
  Effect.map(fs.readFileString(`${dir}/${file}`), (text) => ({ file: `${dir}/${file}`, text }))

/** Loads and checks `registry.yaml` and the files it lists (no database). */
export const loadShared = (options: Pick<Options, "dir" | "tools">): Effect.Effect<Shared, WorkflowInvalid | PlatformError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const dir = options.dir.replace(/\/$/, "")
    const registryFile = yield* read(fs, dir, "registry.yaml")
    const registry = yield* Either.match(WorkflowLoader.loadRegistry(registryFile), {
      onLeft: (diagnostics) => Effect.fail(new WorkflowInvalid({ diagnostics })),
      onRight: Effect.succeed
    })
    const sources = yield* Effect.forEach(registry.workflows, (entry) => read(fs, dir, entry.file))
    const shared = WorkflowLoader.load(sources, options.tools === undefined ? {} : { tools: options.tools })
    if (shared.diagnostics.length > 0) return yield* new WorkflowInvalid({ diagnostics: shared.diagnostics })
    const misnamed = registry.workflows.flatMap((entry, i) =>
      shared.workflows.has(entry.name)
        ? []
        : [WorkflowLoader.diagnosticAt(registryFile, ["workflows", i, "name"], `${entry.file} does not define workflow ${JSON.stringify(entry.name)}`)]
    )
    if (misnamed.length > 0) return yield* new WorkflowInvalid({ diagnostics: misnamed })
    return { entries: registry.workflows, workflows: shared.workflows }
  })

interface Served {
  readonly updatedAt: number
  readonly workflow: Workflow
}

interface OverlayRow {
  readonly tenant_id: string
  readonly name: string
  readonly source: string
  readonly updated_at: Date
}

export const make = (
  options: Options
): Effect.Effect<WorkflowRegistry["Type"], WorkflowInvalid | PlatformError | SqlError, FileSystem.FileSystem | Database | Scope.Scope> =>
  Effect.gen(function*() {
    const shared = yield* loadShared(options)
    const db = yield* Database
    const sql = db.sql
    const check = (source: WorkflowLoader.Source) =>
      WorkflowLoader.load([source], {
        known: shared.workflows,
        overlaysOnly: true,
        ...(options.tools === undefined ? {} : { tools: options.tools })
      })
    const overlayFile = (tenantId: string, name: string) => `workflow_overlays/${tenantId}/${name}.yaml`

    /** tenant → workflow name → its valid overlay; replaced whole, read synchronously by lookups. */
    let served: ReadonlyMap<string, ReadonlyMap<string, Served>> = new Map()
    /** Invalid overlay versions already logged (`tenant/name@updated_at`), so a refresh does not repeat them. */
    const reported = new Set<string>()
    /** Writers of `served` (a refresh, an upload, a removal) take turns, so none undoes another. */
    const writer = yield* Effect.makeSemaphore(1)

    const refresh: Effect.Effect<void, SqlError> = writer.withPermits(1)(Effect.gen(function*() {
      const rows = yield* db.system(
        sql<OverlayRow>`SELECT tenant_id, name, source, updated_at FROM workflow_overlays ORDER BY tenant_id, name`
      )
      const next = new Map<string, Map<string, Served>>()
      for (const row of rows) {
        const updatedAt = row.updated_at.getTime()
        const kept = served.get(row.tenant_id)?.get(row.name)
        let entry: Served | undefined = kept?.updatedAt === updatedAt ? kept : undefined
        if (entry === undefined) {
          const loaded = check({ file: overlayFile(row.tenant_id, row.name), text: row.source })
          const workflow = loaded.workflows.get(row.name)
          if (workflow === undefined || loaded.diagnostics.length > 0) {
            const version = `${row.tenant_id}/${row.name}@${updatedAt}`
            if (!reported.has(version)) {
              reported.add(version)
              yield* Effect.logError(
                `tenant overlay ${row.name} is invalid and not served; the tenant runs the shared workflow`,
                loaded.diagnostics.map(String)
              ).pipe(Effect.annotateLogs({ tenant_id: row.tenant_id, workflow: row.name }))
            }
            continue
          }
          entry = { updatedAt, workflow }
        }
        const tenant = next.get(row.tenant_id) ?? new Map<string, Served>()
        tenant.set(row.name, entry)
        next.set(row.tenant_id, tenant)
      }
      served = next
    }))

    yield* refresh
    yield* refresh.pipe(
      Effect.catchAll((error) => Effect.logWarning("workflow overlays refresh failed; serving the previous ones", error)),
      Effect.delay(options.refresh ?? Duration.seconds(30)),
      Effect.forever,
      Effect.forkScoped
    )

    const current = (tenantId: string | undefined, name: string): Workflow | undefined => {
      const overlay = tenantId === undefined ? undefined : served.get(tenantId)?.get(name)
      return overlay?.workflow ?? shared.workflows.get(name)
    }

    const get = (tenantId: string, name: string): Effect.Effect<Workflow, WorkflowNotFound> =>
      Effect.suspend(() => {
        const workflow = current(tenantId, name)
        return workflow === undefined ? Effect.fail(new WorkflowNotFound({ workflow: name })) : Effect.succeed(workflow)
      })

    const list = (tenantId?: string): ReadonlyArray<Entry> =>
      shared.entries.map((e) => ({ name: e.name, triggers: e.triggers, workflow: current(tenantId, e.name)! }))

    const triggerList: ReadonlyArray<Trigger> = shared.entries.flatMap((entry) => {
      const workflow = shared.workflows.get(entry.name)!
      const labels = [...new Set([...entry.triggers, ...workflow.triggers.map((t) => t.intent)])]
      return labels.map((intent) => ({
        intent,
        workflow: entry.name,
        examples: workflow.triggers.filter((t) => t.intent === intent).flatMap((t) => t.examples)
      }))
    })

    const checkOverlay = (source: WorkflowLoader.Source): Effect.Effect<Workflow, WorkflowInvalid> =>
      Effect.suspend(() => {
        const loaded = check(source)
        const [workflow] = loaded.workflows.values()
        if (loaded.diagnostics.length > 0 || workflow === undefined || loaded.workflows.size !== 1) {
          const diagnostics: ReadonlyArray<Diagnostic> = loaded.diagnostics.length > 0
            ? loaded.diagnostics
            : [WorkflowLoader.diagnosticAt(source, [], "an overlay file holds exactly one workflow")]
          return Effect.fail(new WorkflowInvalid({ diagnostics }))
        }
        return Effect.succeed(workflow)
      })

    const putOverlay = (tenantId: string, source: WorkflowLoader.Source): Effect.Effect<Workflow, WorkflowInvalid | SqlError> =>
      Effect.gen(function*() {
        const workflow = yield* checkOverlay(source)
        yield* writer.withPermits(1)(Effect.gen(function*() {
          const [row] = yield* db.tenant(tenantId)(
            sql<{ updated_at: Date }>`
              INSERT INTO workflow_overlays (tenant_id, name, source)
              VALUES (${tenantId}, ${workflow.name}, ${source.text})
              ON CONFLICT (tenant_id, name) DO UPDATE SET source = EXCLUDED.source, updated_at = clock_timestamp()
              RETURNING updated_at`
          )
          const tenant = new Map(served.get(tenantId)).set(workflow.name, { updatedAt: row!.updated_at.getTime(), workflow })
          served = new Map(served).set(tenantId, tenant)
        }))
        return workflow
      }).pipe(Effect.annotateLogs("tenant_id", tenantId))

    const removeOverlay = (tenantId: string, name: string): Effect.Effect<boolean, SqlError> =>
      writer.withPermits(1)(Effect.gen(function*() {
        const deleted = yield* db.tenant(tenantId)(
          sql`DELETE FROM workflow_overlays WHERE tenant_id = ${tenantId} AND name = ${name} RETURNING name`
        )
        const tenant = new Map(served.get(tenantId))
        tenant.delete(name)
        served = new Map(served).set(tenantId, tenant)
        return deleted.length > 0
      }))

    const overlays = (tenantId: string): Effect.Effect<ReadonlyArray<Overlay>, SqlError> =>
      db.tenant(tenantId)(
        sql<OverlayRow>`SELECT tenant_id, name, source, updated_at FROM workflow_overlays WHERE tenant_id = ${tenantId} ORDER BY name`
      ).pipe(Effect.map((rows) => rows.map((r) => ({ name: r.name, source: r.source, updatedAt: r.updated_at }))))

    return WorkflowRegistry.of({ get, list, triggers: () => triggerList, putOverlay, checkOverlay, removeOverlay, overlays, refresh })
  })

export const layer = (
  options: Options
): Layer.Layer<WorkflowRegistry, WorkflowInvalid | PlatformError | SqlError, FileSystem.FileSystem | Database> =>
  Layer.scoped(WorkflowRegistry, make(options))

/** `WORKFLOWS_DIR` (default: the repository's `workflows/`), `WORKFLOW_OVERLAY_REFRESH` (default 30 seconds). */
export const layerConfig: Layer.Layer<
  WorkflowRegistry,
  WorkflowInvalid | PlatformError | SqlError | ConfigError.ConfigError,
  FileSystem.FileSystem | Database
> = Layer.unwrapEffect(
  Effect.gen(function*() {
    const dir = yield* Config.string("WORKFLOWS_DIR").pipe(Config.withDefault(defaultDir))
    const refresh = yield* Config.duration("WORKFLOW_OVERLAY_REFRESH").pipe(Config.withDefault(Duration.seconds(30)))
    return layer({ dir, refresh })
  })
)

/** The executor's plans from the registry (compiled once per tenant version of a workflow), and `echo`. */
export const plans: Layer.Layer<WorkflowPlans, never, WorkflowRegistry> = Layer.effect(
  WorkflowPlans,
  Effect.map(WorkflowRegistry, (registry) => {
    const compiled = new WeakMap<Workflow, Plan>()
    return {
      get: (tenantId: string, name: string) =>
        name === EchoWorkflow.name
          ? Effect.succeed(EchoWorkflow.plan)
          : Effect.flatMap(registry.get(tenantId, name), (workflow) => {
            const found = compiled.get(workflow)
            if (found !== undefined) return Effect.succeed(found)
            // The loader validated the workflow, so it compiles; a CompileError here is a defect.
            return Either.match(compile(workflow), {
              onLeft: (error) => Effect.die(error),
              onRight: (plan) => Effect.sync(() => (compiled.set(workflow, plan), plan))
            })
          })
    }
  })
)
