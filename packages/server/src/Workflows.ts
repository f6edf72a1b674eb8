/**
 * `tessera workflows validate <file…>`: checks workflow files the way a node does when it
 * starts, together, against the shared workflows of `WORKFLOWS_DIR` (so a tenant overlay or a
 * workflow calling shared sub-workflows can be checked on its own); a `registry.yaml` among them
 * is checked as a registry. Prints every diagnostic as `file:line:column field: message` (a file
 * that cannot be read is one too), or `ok <file>` per file; fails with WorkflowInvalid when there
 * is any diagnostic.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import { Diagnostic, WorkflowInvalid } from "@tessera/domain/Workflow"
import * as WorkflowLoader from "@tessera/runtime/WorkflowLoader"
import * as WorkflowRegistry from "@tessera/runtime/WorkflowRegistry"
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"

export const validate = (files: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const read = yield* Effect.forEach(files, (file) =>
      fs.readFileString(file).pipe(
        Effect.map((text): WorkflowLoader.Source => ({ file, text })),
        Effect.mapError((error) =>
          new Diagnostic({
            file,
            line: 1,
            column: 1,
            path: "",
            message: `cannot read the file (${error._tag === "SystemError" ? error.reason : error.message})`
          })
        ),
        Effect.either
      ))
    const unreadable = read.flatMap((r) => Either.isLeft(r) ? [r.left] : [])
    const sources = read.flatMap((r) => Either.isRight(r) ? [r.right] : [])
    const dir = yield* Config.string("WORKFLOWS_DIR").pipe(Config.withDefault(WorkflowRegistry.defaultDir))
    // The shared set, when it loads, is what the files may reference; the files win on a name clash.
    const known = yield* WorkflowRegistry.loadShared({ dir }).pipe(
      Effect.map((shared) => shared.workflows),
      Effect.orElseSucceed(() => new Map())
    )
    const registries = sources.filter((s) => s.file.endsWith("registry.yaml"))
    const { diagnostics: found } = WorkflowLoader.load(sources.filter((s) => !registries.includes(s)), { known })
    const diagnostics = [
      ...unreadable,
      ...registries.flatMap((source) => Either.match(WorkflowLoader.loadRegistry(source), { onLeft: (d) => d, onRight: () => [] })),
      ...found
    ]
    for (const d of diagnostics) yield* Console.log(String(d))
    if (diagnostics.length > 0) return yield* new WorkflowInvalid({ diagnostics })
    for (const file of files) yield* Console.log(`ok ${file}`)
  })
