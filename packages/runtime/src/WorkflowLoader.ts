/**
 * Loads workflow files: parses the YAML keeping positions, decodes each step by its kind, applies
 * tenant overlays (`extends`) and checks the graph. Every problem of every file is reported at
 * once, each as a Diagnostic with file, line, column and field path:
 *
 * - YAML syntax; schema errors (wrong types, missing or unknown keys); unknown step kinds;
 * - duplicate step ids; references (`next`, `default`, branches, routes, `on_timeout`,
 *   `fallback:`, `repair.step`, `start`) to steps that do not exist;
 * - unknown tools (steps and compensations); sub-workflows that are not loaded, or that lead back
 *   to the calling workflow (recursion, direct or through other sub-workflows);
 * - templates and expressions that do not parse, or read `steps.<id>` of a step the workflow does
 *   not have (positioned inside the YAML string);
 * - steps never reached from `start`; cycles that pass neither through a validate step's repair
 *   loop (bounded by `repair.max`) nor through a step with `max_visits`;
 * - overlays whose base, or a step they replace, does not exist (a problem an overlay causes in a
 *   step it kept from its base is reported at its `extends`).
 *
 * Positions are 1-based; an error inside a template or expression points at the character in
 * the YAML string. A set with any diagnostic yields no workflows.
 */
import { builtinToolNames } from "@tessera/domain/Tool"
import {
  Diagnostic,
  Registry,
  stepKinds,
  stepSchemas,
  type Step,
  type StepKind,
  type Workflow,
  WorkflowHeader
} from "@tessera/domain/Workflow"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { isScalar, LineCounter, parseDocument, type Document } from "yaml"
import * as Expression from "./Expression.js"

export interface Source {
  readonly file: string
  readonly text: string
}

export interface Options {
  /** Tool names a step may call besides the built-in ones (tenant tools, test tools). */
  readonly tools?: ReadonlyArray<string>
  /** Workflows already loaded that these may reference or extend (e.g. the shared set, for a tenant's overlay). */
  readonly known?: ReadonlyMap<string, Workflow>
  /** Every source must be an overlay (`extends:` one of `known`): how a tenant's uploads are checked. */
  readonly overlaysOnly?: boolean
}

export interface Loaded {
  readonly workflows: ReadonlyMap<string, Workflow>
  readonly diagnostics: ReadonlyArray<Diagnostic>
}

type Path = ReadonlyArray<string | number>

/** A parsed file and how to turn a path (plus an offset into a string) into a position. */
interface File {
  readonly file: string
  readonly text: string
  readonly doc: Document
  readonly lines: LineCounter
}

const pathText = (path: Path): string =>
  path.reduce<string>((text, key) => typeof key === "number" ? `${text}[${key}]` : text === "" ? key : `${text}.${key}`, "")

/**
 * Where the character at `offset` of a scalar's value is in its source text (`source` starts at
 * the scalar): past the opening quote and over escapes, or in the indented lines of a `|` block.
 * Other styles (folded, multi-line plain) point at the scalar's start.
 */
const sourceOffset = (source: string, type: string | undefined, offset: number): number => {
  switch (type) {
    case "PLAIN":
      return offset
    case "QUOTE_SINGLE":
    case "QUOTE_DOUBLE": {
      const escape = type === "QUOTE_DOUBLE" ? "\\" : "'"
      let i = 1
      for (let n = 0; n < offset && i < source.length; n++) i += source[i] === escape && i + 1 < source.length ? 2 : 1
      return i
    }
    case "BLOCK_LITERAL": {
      const lines = source.split("\n")
      const indent = lines.slice(1).find((l) => l.trim() !== "")?.search(/\S/) ?? 0
      let at = lines[0]!.length + 1
      let left = offset
      for (const line of lines.slice(1)) {
        const content = line.slice(Math.min(indent, line.length))
        if (left <= content.length) return at + Math.min(indent, line.length) + left
        left -= content.length + 1
        at += line.length + 1
      }
      return 0
    }
    default:
      return 0
  }
}

const diagnostic = (file: File, path: Path, message: string, offset?: number): Diagnostic => {
  // The deepest node that exists along the path.
  let node: unknown = undefined
  for (let n = path.length; n >= 0 && node === undefined; n--) {
    node = n === 0 ? file.doc.contents : file.doc.getIn(path.slice(0, n), true)
  }
  const range = (node as { range?: [number, number, number] } | undefined)?.range
  const start = range?.[0] ?? 0
  const at = offset !== undefined && isScalar(node) ? start + sourceOffset(file.text.slice(start, range?.[1]), node.type, offset) : start
  const { col, line } = file.lines.linePos(at)
  return new Diagnostic({ file: file.file, line, column: col, path: pathText(path), message })
}

const schemaDiagnostics = (file: File, base: Path, error: ParseResult.ParseError): Array<Diagnostic> =>
  ParseResult.ArrayFormatter.formatErrorSync(error)
    // An optional key's union also reports "Expected undefined"; the other member says more.
    .filter((issue) => !issue.message.startsWith("Expected undefined"))
    .map((issue) =>
      diagnostic(
        file,
        [...base, ...issue.path.map((k) => typeof k === "number" ? k : String(k))],
        issue.message.startsWith("is unexpected") ? "unknown key" : issue.message
      )
    )

/** The YAML parser's errors, at the position each starts. */
const syntaxDiagnostics = (file: File): Array<Diagnostic> =>
  file.doc.errors.map((error) => {
    const { col, line } = file.lines.linePos(error.pos[0])
    return new Diagnostic({ file: file.file, line, column: col, path: "", message: `YAML: ${error.message.split("\n")[0]!}` })
  })

const decodeOptions = { errors: "all", onExcessProperty: "error" } as const
const decodeHeader = Schema.decodeUnknownEither(WorkflowHeader, decodeOptions)
const stepDecoders = Object.fromEntries(
  stepKinds.map((kind) => [kind, Schema.decodeUnknownEither(stepSchemas[kind] as Schema.Schema<Step, unknown>, decodeOptions)])
) as Record<StepKind, (u: unknown) => Either.Either<Step, ParseResult.ParseError>>

/** Where each step of a (possibly merged) workflow came from, for positions. */
interface Draft {
  readonly file: File
  readonly raw: Record<string, unknown>
  readonly header: typeof WorkflowHeader.Type
  readonly steps: Array<{ readonly step: Step; readonly file: File; readonly index: number }>
}

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

const parseFile = (source: Source, out: Array<Diagnostic>): Draft | undefined => {
  const lines = new LineCounter()
  const doc = parseDocument(source.text, { lineCounter: lines, prettyErrors: false })
  const file: File = { file: source.file, text: source.text, doc, lines }
  if (doc.errors.length > 0) {
    out.push(...syntaxDiagnostics(file))
    return undefined
  }
  const raw: unknown = doc.toJS()
  if (!isRecord(raw)) {
    out.push(diagnostic(file, [], "a workflow file is a map with name, steps, …"))
    return undefined
  }
  const header = decodeHeader(raw)
  let ok = Either.isRight(header)
  if (Either.isLeft(header)) out.push(...schemaDiagnostics(file, [], header.left))
  const steps: Draft["steps"] = []
  const rawSteps = Array.isArray(raw["steps"]) ? raw["steps"] : []
  rawSteps.forEach((rawStep: unknown, index) => {
    const kind = isRecord(rawStep) ? rawStep["kind"] : undefined
    if (typeof kind !== "string" || !(stepKinds as ReadonlyArray<string>).includes(kind)) {
      ok = false
      out.push(diagnostic(
        file,
        ["steps", index, "kind"],
        kind === undefined
          ? "is missing"
          : `unknown step kind ${JSON.stringify(kind)} (expected one of ${stepKinds.join(", ")})`
      ))
      return
    }
    const decoded = stepDecoders[kind as StepKind](rawStep)
    if (Either.isLeft(decoded)) {
      ok = false
      out.push(...schemaDiagnostics(file, ["steps", index], decoded.left))
      return
    }
    steps.push({ step: decoded.right, file, index })
  })
  return ok && Either.isRight(header) ? { file, raw, header: header.right, steps } : undefined
}

/** The steps a step may go to, with the path of the field that says so. */
export const successors = (step: Step): Array<{ readonly target: string; readonly path: Path; readonly repair: boolean }> => {
  const out: Array<{ target: string; path: Path; repair: boolean }> = []
  const add = (target: string | undefined, path: Path, repair = false) => {
    if (target !== undefined) out.push({ target, path, repair })
  }
  add(step.next, ["next"])
  if (step.on_error.startsWith("fallback:")) add(step.on_error.slice("fallback:".length), ["on_error"])
  switch (step.kind) {
    case "branch":
      step.branches.forEach((b, i) => add(b.next, ["branches", i, "next"]))
      add(step.default, ["default"])
      break
    case "route":
      step.routes.forEach((r, i) => add(r.next, ["routes", i, "next"]))
      break
    case "wait":
      add(step.on_timeout, ["on_timeout"])
      break
    case "validate":
      add(step.repair?.step, ["repair", "step"], true)
      break
  }
  return out
}

/** Every template (and the one bare expression, `when`) of a step, with its path. */
const expressions = (step: Step): Array<{ readonly path: Path; readonly source: string; readonly bare: boolean }> => {
  const out: Array<{ path: Path; source: string; bare: boolean }> = []
  const template = (path: Path, value: unknown) => {
    if (typeof value === "string") out.push({ path, source: value, bare: false })
    else if (Array.isArray(value)) value.forEach((v, i) => template([...path, i], v))
    else if (isRecord(value)) for (const [k, v] of Object.entries(value)) template([...path, k], v)
  }
  if (step.compensate !== undefined) template(["compensate", "input"], step.compensate.input)
  switch (step.kind) {
    case "llm":
      template(["prompt"], step.prompt)
      template(["system"], step.system)
      template(["passages"], step.passages)
      break
    case "tool":
    case "workflow":
      template(["input"], step.input)
      break
    case "retrieve":
      template(["query"], step.query)
      break
    case "route":
      template(["text"], step.text)
      break
    case "branch":
      step.branches.forEach((b, i) => out.push({ path: ["branches", i, "when"], source: b.when, bare: true }))
      break
    case "validate":
      template(["value"], step.value)
      step.gates.forEach((gate, i) => {
        if ("score_threshold" in gate) template(["gates", i, "score_threshold", "score"], gate.score_threshold.score)
        if ("factuality" in gate) template(["gates", i, "factuality", "passages"], gate.factuality.passages)
      })
      break
    case "respond":
      template(["answer"], step.answer)
      template(["citations"], step.citations)
      template(["escalated"], step.escalated)
      break
  }
  return out
}

/** Applies an overlay to its base: header keys the overlay sets, and steps replaced by id. */
const applyOverlay = (overlay: Draft, base: Draft, out: Array<Diagnostic>): Draft => {
  const replaced = new Map(overlay.steps.map((s) => [s.step.id, s]))
  const baseIds = new Set(base.steps.map((s) => s.step.id))
  const seen = new Set<string>()
  for (const s of overlay.steps) {
    if (seen.has(s.step.id)) out.push(diagnostic(s.file, ["steps", s.index, "id"], `duplicate step id ${JSON.stringify(s.step.id)}`))
    seen.add(s.step.id)
    if (!baseIds.has(s.step.id)) {
      out.push(diagnostic(
        s.file,
        ["steps", s.index, "id"],
        `replaces step ${JSON.stringify(s.step.id)}, which base workflow ${JSON.stringify(base.header.name)} does not have`
      ))
    }
  }
  const header = { ...base.header }
  for (const key of ["version", "description", "triggers", "budgets", "inputs", "start", "max_steps"] as const) {
    if (key in overlay.raw) Object.assign(header, { [key]: overlay.header[key] })
  }
  return {
    file: overlay.file,
    raw: overlay.raw,
    header: { ...header, name: overlay.header.name, extends: base.header.name },
    steps: base.steps.map((s) => replaced.get(s.step.id) ?? s)
  }
}

const toWorkflow = (draft: Draft): Workflow => {
  const { steps: _steps, version, ...header } = draft.header
  return {
    ...header,
    version: String(version),
    start: draft.header.start ?? draft.steps[0]?.step.id ?? "",
    steps: draft.steps.map((s) => s.step)
  }
}

/** The workflows `from` calls (directly or not) up to `to`, as a path from `from`; undefined when it never does. */
const callPath = (calls: ReadonlyMap<string, ReadonlyArray<string>>, from: string, to: string): Array<string> | undefined => {
  const parent = new Map<string, string | undefined>([[from, undefined]])
  const queue = [from]
  while (queue.length > 0) {
    const name = queue.shift()!
    if (name === to) {
      const path: Array<string> = []
      for (let at: string | undefined = name; at !== undefined; at = parent.get(at)) path.unshift(at)
      return path
    }
    for (const callee of calls.get(name) ?? []) {
      if (!parent.has(callee)) {
        parent.set(callee, name)
        queue.push(callee)
      }
    }
  }
  return undefined
}

/** The graph checks of one complete workflow. */
const check = (
  draft: Draft,
  tools: ReadonlySet<string>,
  calls: ReadonlyMap<string, ReadonlyArray<string>>,
  out: Array<Diagnostic>
) => {
  // A problem in a step an overlay kept from its base is the overlay's doing: it is reported at
  // the overlay's `extends`, naming the base step.
  const at = (s: Draft["steps"][number], path: Path, message: string, offset?: number) =>
    out.push(
      s.file === draft.file
        ? diagnostic(s.file, ["steps", s.index, ...path], message, offset)
        : diagnostic(draft.file, ["extends"], `base step ${JSON.stringify(s.step.id)}: ${message}`)
    )
  const byId = new Map<string, Draft["steps"][number]>()
  for (const s of draft.steps) {
    if (byId.has(s.step.id)) at(s, ["id"], `duplicate step id ${JSON.stringify(s.step.id)}`)
    else byId.set(s.step.id, s)
  }
  if (draft.steps.length === 0) {
    out.push(diagnostic(draft.file, ["steps"], "a workflow needs at least one step"))
    return
  }
  const start = draft.header.start ?? draft.steps[0]!.step.id
  if (!byId.has(start)) out.push(diagnostic(draft.file, ["start"], `step ${JSON.stringify(start)} does not exist`))

  for (const s of draft.steps) {
    for (const edge of successors(s.step)) {
      if (!byId.has(edge.target)) at(s, edge.path, `step ${JSON.stringify(edge.target)} does not exist`)
    }
    const toolCalls: Array<{ tool: string; path: Path }> = []
    if (s.step.kind === "tool") toolCalls.push({ tool: s.step.tool, path: ["tool"] })
    if (s.step.compensate !== undefined) toolCalls.push({ tool: s.step.compensate.tool, path: ["compensate", "tool"] })
    for (const call of toolCalls) {
      if (!tools.has(call.tool)) at(s, call.path, `unknown tool ${JSON.stringify(call.tool)}`)
    }
    if (s.step.kind === "workflow") {
      if (!calls.has(s.step.workflow)) at(s, ["workflow"], `sub-workflow ${JSON.stringify(s.step.workflow)} does not exist`)
      const back = callPath(calls, s.step.workflow, draft.header.name)
      if (back !== undefined) {
        at(s, ["workflow"], `sub-workflow cycle ${[draft.header.name, ...back].join(" → ")}: a workflow cannot run itself, directly or through sub-workflows`)
      }
    }
    for (const e of expressions(s.step)) {
      const what = e.bare ? "expression" : "template"
      const parsed: Either.Either<Expression.Expression | Expression.Template, Expression.ExpressionError> = e.bare
        ? Expression.parse(e.source)
        : Expression.parseTemplate(e.source)
      if (Either.isLeft(parsed)) {
        const { message, offset } = parsed.left
        at(s, e.path, `${what}: ${message} at character ${offset + 1}`, offset)
        continue
      }
      // `steps.<id>` of a step this workflow does not have is always undefined: a typo.
      for (const path of Expression.paths(parsed.right)) {
        const [first] = path.segments
        if (path.root === "steps" && first?._tag === "Literal" && typeof first.value === "string" && !byId.has(first.value)) {
          at(s, e.path, `${what}: steps.${first.value} reads a step that does not exist at character ${path.offset + 1}`, path.offset)
        }
      }
    }
  }

  // Reachability over every edge.
  const seen = new Set<string>()
  const queue = byId.has(start) ? [start] : []
  while (queue.length > 0) {
    const id = queue.pop()!
    if (seen.has(id)) continue
    seen.add(id)
    for (const edge of successors(byId.get(id)!.step)) if (byId.has(edge.target)) queue.push(edge.target)
  }
  for (const [id, s] of byId) {
    if (byId.has(start) && !seen.has(id)) at(s, ["id"], `step ${JSON.stringify(id)} is never reached from ${JSON.stringify(start)}`)
  }

  // Cycles without a bound: strongly connected components of the graph without its bounded parts
  // (repair edges, and steps with max_visits): every cycle must pass through one of those.
  const bounded = (id: string) => byId.get(id)!.step.max_visits !== undefined
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: Array<string> = []
  const onStack = new Set<string>()
  let counter = 0
  const edges = (id: string) =>
    successors(byId.get(id)!.step).filter((e) => !e.repair && byId.has(e.target) && !bounded(e.target)).map((e) => e.target)
  const visit = (id: string) => {
    index.set(id, counter)
    low.set(id, counter)
    counter++
    stack.push(id)
    onStack.add(id)
    for (const target of edges(id)) {
      if (!index.has(target)) {
        visit(target)
        low.set(id, Math.min(low.get(id)!, low.get(target)!))
      } else if (onStack.has(target)) {
        low.set(id, Math.min(low.get(id)!, index.get(target)!))
      }
    }
    if (low.get(id) === index.get(id)) {
      const component: Array<string> = []
      let member: string
      do {
        member = stack.pop()!
        onStack.delete(member)
        component.push(member)
      } while (member !== id)
      if (component.length > 1 || edges(id).includes(id)) {
        const order = draft.steps.map((s) => s.step.id).filter((x) => component.includes(x))
        at(
          byId.get(order[0]!)!,
          ["id"],
          `cycle ${[...order, order[0]].join(" → ")} has no bound: give one of its steps max_visits, or loop back through a validate step's repair`
        )
      }
    }
  }
  for (const id of byId.keys()) if (!index.has(id) && !bounded(id)) visit(id)
}

/** Decodes `registry.yaml`; problems come back as positioned diagnostics. */
export const loadRegistry = (source: Source): Either.Either<typeof Registry.Type, ReadonlyArray<Diagnostic>> => {
  const lines = new LineCounter()
  const doc = parseDocument(source.text, { lineCounter: lines, prettyErrors: false })
  const file: File = { file: source.file, text: source.text, doc, lines }
  if (doc.errors.length > 0) {
    return Either.left(syntaxDiagnostics(file))
  }
  return Either.mapLeft(
    Schema.decodeUnknownEither(Registry, decodeOptions)(doc.toJS()),
    (error) => schemaDiagnostics(file, [], error)
  )
}

/** A diagnostic at a path of a source (for checks made outside this module). */
export const diagnosticAt = (source: Source, path: Path, message: string): Diagnostic => {
  const lines = new LineCounter()
  return diagnostic({ file: source.file, text: source.text, doc: parseDocument(source.text, { lineCounter: lines }), lines }, path, message)
}

/** Loads and checks files together (they may reference and extend each other and `known`). */
export const load = (sources: ReadonlyArray<Source>, options: Options = {}): Loaded => {
  const out: Array<Diagnostic> = []
  const drafts = sources.flatMap((source) => {
    const draft = parseFile(source, out)
    return draft === undefined ? [] : [draft]
  })
  const names = new Map<string, Draft>()
  for (const draft of drafts) {
    const seen = names.get(draft.header.name)
    if (seen !== undefined) {
      out.push(diagnostic(draft.file, ["name"], `workflow ${JSON.stringify(draft.header.name)} is also defined in ${seen.file.file}`))
    } else {
      names.set(draft.header.name, draft)
    }
  }
  const knownDrafts = new Map<string, Draft>()
  for (const workflow of options.known?.values() ?? []) {
    // A known workflow is valid already; positions in it are never reported.
    const lines = new LineCounter()
    const file: File = { file: `(${workflow.name})`, text: "{}", doc: parseDocument("{}", { lineCounter: lines }), lines }
    knownDrafts.set(workflow.name, {
      file,
      raw: {},
      header: { ...workflow, steps: workflow.steps },
      steps: workflow.steps.map((step, index) => ({ step, file, index }))
    })
  }
  const resolved = new Map<string, Draft>()
  for (const draft of names.values()) {
    const baseName = draft.header.extends
    if (baseName === undefined && options.overlaysOnly === true) {
      out.push(diagnostic(draft.file, ["name"], "a tenant workflow is an overlay: add extends: <shared workflow>"))
      continue
    }
    if (baseName === undefined) {
      resolved.set(draft.header.name, draft)
      continue
    }
    const base = (baseName === draft.header.name ? undefined : names.get(baseName)) ?? knownDrafts.get(baseName)
    if (base === undefined || base.header.extends !== undefined) {
      out.push(diagnostic(draft.file, ["extends"], `base workflow ${JSON.stringify(baseName)} does not exist`))
      continue
    }
    resolved.set(draft.header.name, applyOverlay(draft, base, out))
  }
  const tools = new Set<string>([...builtinToolNames, ...(options.tools ?? [])])
  // Which workflows each one calls: the set's own, then the known ones it does not redefine.
  const calls = new Map<string, ReadonlyArray<string>>()
  for (const [name, draft] of [...knownDrafts, ...resolved]) {
    calls.set(name, draft.steps.flatMap((s) => s.step.kind === "workflow" ? [s.step.workflow] : []))
  }
  for (const draft of resolved.values()) check(draft, tools, calls, out)
  const workflows = new Map<string, Workflow>()
  // All or nothing: a server never runs a workflow from a set that did not validate.
  if (out.length === 0) for (const [name, draft] of resolved) workflows.set(name, toWorkflow(draft))
  out.sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line || a.column - b.column)
  return { workflows, diagnostics: out }
}
