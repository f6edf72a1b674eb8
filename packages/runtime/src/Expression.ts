/**
 * The workflow expression language: a small, safe language over a run's scope
 * (`{ input, steps, context, run }`). No `eval`, no `Function`, no host objects: a path reads only
 * own data properties of plain objects and arrays (never a getter, a function or anything
 * inherited), and `__proto__`, `constructor` and `prototype` read as undefined; the only calls are
 * the built-in functions below. Evaluation is total: a missing path is undefined, a type mismatch
 * is undefined or false, never an exception.
 *
 * Semantics: `==`/`!=` compare by value (lists and objects deeply; null equals undefined);
 * `<`, `<=`, `>`, `>=` compare two numbers or two strings, anything else is false; `+` adds numbers
 * or, when either side is a string, concatenates; other arithmetic on non-numbers (or a result
 * that is not finite) is undefined; `a in b` is `contains(b, a)`; `&&`/`||` short-circuit and
 * return an operand; `truthy` is JavaScript's, except that an empty list or object is false.
 * `contains` is a case-insensitive substring test on strings and a membership test on lists;
 * `exists(x)` is false for undefined, null and ""; `default(x, y)` is y when x does not exist.
 *
 *   literals     1, 2.5, "text", 'text', true, false, null, [1, "a"]
 *   paths        input.message, steps.search.score, input.items[0].sku, steps["a-b"]
 *   operators    ! - (unary)   * / %   + -   < <= > >=   == !=   in   &&   ||   a ? b : c
 *   functions    len(x) lower(s) upper(s) trim(s) contains(hay, needle) exists(x)
 *                default(x, fallback) number(x) string(x) round(x, digits) min(a, b) max(a, b)
 *                join(list, sep) first(list)
 *
 * Templates interpolate expressions in text: `Hello {{ input.name }}`.
 */
import * as Either from "effect/Either"

export class ExpressionError {
  readonly _tag = "ExpressionError"
  constructor(readonly message: string, readonly offset: number) {}
}

export type Expression =
  | { readonly _tag: "Literal"; readonly value: unknown }
  | { readonly _tag: "List"; readonly items: ReadonlyArray<Expression> }
  /** `offset`: where the path starts in the source (in a template: in the whole text). */
  | { readonly _tag: "Path"; readonly root: string; readonly segments: ReadonlyArray<Expression>; readonly offset: number }
  | { readonly _tag: "Unary"; readonly op: "!" | "-"; readonly operand: Expression }
  | { readonly _tag: "Binary"; readonly op: string; readonly left: Expression; readonly right: Expression }
  | { readonly _tag: "Conditional"; readonly test: Expression; readonly then: Expression; readonly otherwise: Expression }
  | { readonly _tag: "Call"; readonly fn: string; readonly args: ReadonlyArray<Expression> }

/** The names a path may start with. */
export const roots: ReadonlyArray<string> = ["input", "steps", "context", "run"]

type Token =
  | { readonly kind: "num"; readonly value: number; readonly at: number }
  | { readonly kind: "str"; readonly value: string; readonly at: number }
  | { readonly kind: "id"; readonly value: string; readonly at: number }
  | { readonly kind: "op"; readonly value: string; readonly at: number }
  | { readonly kind: "end"; readonly at: number }

const operators = ["&&", "||", "==", "!=", "<=", ">=", "<", ">", "!", "+", "-", "*", "/", "%", "(", ")", "[", "]", ".", ",", "?", ":"]

/** Tokens of `source`, positioned as if it started at `base` (its place in a template). */
const tokenize = (source: string, base: number): Array<Token> => {
  const tokens: Array<Token> = []
  let i = 0
  while (i < source.length) {
    const c = source[i]!
    if (/\s/.test(c)) {
      i++
      continue
    }
    if (/[0-9]/.test(c)) {
      const m = /^[0-9]+(\.[0-9]+)?/.exec(source.slice(i))!
      tokens.push({ kind: "num", value: Number(m[0]), at: base + i })
      i += m[0].length
      continue
    }
    if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(source.slice(i))!
      tokens.push({ kind: "id", value: m[0], at: base + i })
      i += m[0].length
      continue
    }
    if (c === "\"" || c === "'") {
      let j = i + 1
      let value = ""
      while (j < source.length && source[j] !== c) {
        if (source[j] === "\\" && j + 1 < source.length) {
          const next = source[j + 1]!
          value += next === "n" ? "\n" : next === "t" ? "\t" : next
          j += 2
        } else {
          value += source[j]
          j++
        }
      }
      if (j >= source.length) throw new ExpressionError("unterminated string", base + i)
      tokens.push({ kind: "str", value, at: base + i })
      i = j + 1
      continue
    }
    const op = operators.find((o) => source.startsWith(o, i))
    if (op === undefined) throw new ExpressionError(`unexpected character ${JSON.stringify(c)}`, base + i)
    tokens.push({ kind: "op", value: op, at: base + i })
    i += op.length
  }
  tokens.push({ kind: "end", at: base + source.length })
  return tokens
}

const functions: Record<string, { readonly arity: [number, number]; readonly apply: (args: ReadonlyArray<unknown>) => unknown }> = {
  len: { arity: [1, 1], apply: ([x]) => typeof x === "string" || Array.isArray(x) ? x.length : isRecord(x) ? Object.keys(x).length : 0 },
  lower: { arity: [1, 1], apply: ([x]) => typeof x === "string" ? x.toLowerCase() : undefined },
  upper: { arity: [1, 1], apply: ([x]) => typeof x === "string" ? x.toUpperCase() : undefined },
  trim: { arity: [1, 1], apply: ([x]) => typeof x === "string" ? x.trim() : undefined },
  contains: {
    arity: [2, 2],
    apply: ([hay, needle]) =>
      typeof hay === "string"
        ? typeof needle === "string" && hay.toLowerCase().includes(needle.toLowerCase())
        : Array.isArray(hay) && hay.some((x) => equals(x, needle))
  },
  exists: { arity: [1, 1], apply: ([x]) => x !== undefined && x !== null && x !== "" },
  default: { arity: [2, 2], apply: ([x, fallback]) => x === undefined || x === null || x === "" ? fallback : x },
  number: {
    arity: [1, 1],
    apply: ([x]) => {
      const n = typeof x === "number" ? x : typeof x === "string" && x.trim() !== "" ? Number(x) : NaN
      return Number.isFinite(n) ? n : undefined
    }
  },
  string: { arity: [1, 1], apply: ([x]) => stringify(x) },
  round: {
    arity: [1, 2],
    apply: ([x, digits]) => {
      if (typeof x !== "number") return undefined
      const f = 10 ** (typeof digits === "number" ? Math.max(0, Math.min(10, Math.trunc(digits))) : 0)
      return Math.round(x * f) / f
    }
  },
  min: { arity: [2, 2], apply: ([a, b]) => typeof a === "number" && typeof b === "number" ? Math.min(a, b) : undefined },
  max: { arity: [2, 2], apply: ([a, b]) => typeof a === "number" && typeof b === "number" ? Math.max(a, b) : undefined },
  join: {
    arity: [1, 2],
    apply: ([list, sep]) => Array.isArray(list) ? list.map(stringify).join(typeof sep === "string" ? sep : ", ") : undefined
  },
  first: { arity: [1, 1], apply: ([list]) => Array.isArray(list) ? list[0] : undefined }
}

const functionNames: ReadonlyArray<string> = Object.keys(functions)

const precedence: Record<string, number> = {
  "||": 1,
  "&&": 2,
  "==": 3,
  "!=": 3,
  "<": 4,
  "<=": 4,
  ">": 4,
  ">=": 4,
  "in": 4,
  "+": 5,
  "-": 5,
  "*": 6,
  "/": 6,
  "%": 6
}

const parser = (tokens: ReadonlyArray<Token>) => {
  let pos = 0
  const peek = () => tokens[pos]!
  const next = () => tokens[pos++]!
  const isOp = (value: string) => {
    const t = peek()
    return t.kind === "op" && t.value === value
  }
  const expect = (value: string) => {
    const t = next()
    if (t.kind !== "op" || t.value !== value) throw new ExpressionError(`expected "${value}"`, t.at)
  }

  const binaryOp = (): string | undefined => {
    const t = peek()
    if (t.kind === "op" && t.value in precedence) return t.value
    if (t.kind === "id" && t.value === "in") return "in"
    return undefined
  }

  const expression = (): Expression => {
    const test = binary(0)
    if (!isOp("?")) return test
    next()
    const then = expression()
    expect(":")
    return { _tag: "Conditional", test, then, otherwise: expression() }
  }

  const binary = (min: number): Expression => {
    let left = unary()
    for (;;) {
      const op = binaryOp()
      if (op === undefined || precedence[op]! <= min) return left
      next()
      left = { _tag: "Binary", op, left, right: binary(precedence[op]!) }
    }
  }

  const unary = (): Expression => {
    if (isOp("!") || isOp("-")) {
      const op = (next() as { value: "!" | "-" }).value
      return { _tag: "Unary", op, operand: unary() }
    }
    return primary()
  }

  const primary = (): Expression => {
    const t = next()
    switch (t.kind) {
      case "num":
      case "str":
        return { _tag: "Literal", value: t.value }
      case "end":
        throw new ExpressionError("unexpected end of expression", t.at)
      case "op": {
        if (t.value === "(") {
          const inner = expression()
          expect(")")
          return inner
        }
        if (t.value === "[") {
          const items: Array<Expression> = []
          if (!isOp("]")) {
            do items.push(expression())
            while (isOp(",") && next())
          }
          expect("]")
          return { _tag: "List", items }
        }
        throw new ExpressionError(`unexpected "${t.value}"`, t.at)
      }
      case "id": {
        if (t.value === "true" || t.value === "false") return { _tag: "Literal", value: t.value === "true" }
        if (t.value === "null") return { _tag: "Literal", value: null }
        if (isOp("(")) {
          const fn = functions[t.value]
          if (fn === undefined) throw new ExpressionError(`unknown function "${t.value}" (functions: ${functionNames.join(", ")})`, t.at)
          next()
          const args: Array<Expression> = []
          if (!isOp(")")) {
            do args.push(expression())
            while (isOp(",") && next())
          }
          expect(")")
          const [lo, hi] = fn.arity
          if (args.length < lo || args.length > hi) {
            throw new ExpressionError(
              `${t.value}() takes ${lo === hi ? lo : `${lo} to ${hi}`} argument${hi === 1 ? "" : "s"}, got ${args.length}`,
              t.at
            )
          }
          return { _tag: "Call", fn: t.value, args }
        }
        if (!roots.includes(t.value)) {
          throw new ExpressionError(`unknown name "${t.value}": paths start with ${roots.join(", ")}`, t.at)
        }
        const segments: Array<Expression> = []
        for (;;) {
          if (isOp(".")) {
            next()
            const name = next()
            if (name.kind !== "id") throw new ExpressionError("expected a property name after \".\"", name.at)
            segments.push({ _tag: "Literal", value: name.value })
          } else if (isOp("[")) {
            next()
            segments.push(expression())
            expect("]")
          } else {
            return { _tag: "Path", root: t.value, segments, offset: t.at }
          }
        }
      }
    }
  }

  return { expression, peek }
}

/** Parses `source` as if it started at `base`. */
const parseAt = (source: string, base: number): Either.Either<Expression, ExpressionError> => {
  try {
    const p = parser(tokenize(source, base))
    const expression = p.expression()
    const rest = p.peek()
    if (rest.kind !== "end") return Either.left(new ExpressionError("unexpected text after the expression", rest.at))
    return Either.right(expression)
  } catch (error) {
    if (error instanceof ExpressionError) return Either.left(error)
    throw error
  }
}

/** Parses an expression; the error's offset is the character where it went wrong. */
export const parse = (source: string): Either.Either<Expression, ExpressionError> => parseAt(source, 0)

const isRecord = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null && !Array.isArray(value) &&
  (Object.getPrototypeOf(value) === Object.prototype || Object.getPrototypeOf(value) === null)

const forbidden = new Set(["__proto__", "constructor", "prototype"])

/** An own data property's value, never a getter's, a function, or anything inherited. */
const own = (value: object, name: string): unknown => {
  const descriptor = Object.getOwnPropertyDescriptor(value, name)
  return descriptor === undefined || !("value" in descriptor) || typeof descriptor.value === "function"
    ? undefined
    : descriptor.value
}

/** An own property of a plain object or an array element (negative: from the end); undefined for anything else. */
const property = (value: unknown, key: unknown): unknown => {
  if (Array.isArray(value)) {
    if (typeof key === "number" && Number.isInteger(key)) return own(value, String(key < 0 ? value.length + key : key))
    return key === "length" ? value.length : undefined
  }
  if (isRecord(value) && (typeof key === "string" || typeof key === "number")) {
    const name = String(key)
    return forbidden.has(name) ? undefined : own(value, name)
  }
  return undefined
}

const equals = (a: unknown, b: unknown): boolean => {
  if (a === b) return true
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => equals(x, b[i]))
  if (isRecord(a) && isRecord(b)) {
    const keys = Object.keys(a)
    return keys.length === Object.keys(b).length && keys.every((k) => equals(a[k], b[k]))
  }
  return (a === undefined || a === null) && (b === undefined || b === null)
}

/** JavaScript truthiness, except that an empty list or object is false. */
export const truthy = (value: unknown): boolean =>
  Array.isArray(value) ? value.length > 0 : isRecord(value) ? Object.keys(value).length > 0 : Boolean(value)

const stringify = (value: unknown): string =>
  value === undefined || value === null ? "" : typeof value === "string" ? value : typeof value === "object"
    ? JSON.stringify(value)
    : String(value)

const compare = (op: string, a: unknown, b: unknown): boolean => {
  if (!((typeof a === "number" && typeof b === "number") || (typeof a === "string" && typeof b === "string"))) return false
  switch (op) {
    case "<":
      return a < b
    case "<=":
      return a <= b
    case ">":
      return a > b
    default:
      return a >= b
  }
}

const arithmetic = (op: string, a: unknown, b: unknown): unknown => {
  if (op === "+" && (typeof a === "string" || typeof b === "string")) return stringify(a) + stringify(b)
  if (typeof a !== "number" || typeof b !== "number") return undefined
  const result = op === "+" ? a + b : op === "-" ? a - b : op === "*" ? a * b : op === "/" ? a / b : a % b
  return Number.isFinite(result) ? result : undefined
}

/** Evaluates an expression over a scope; total (see the module's comment). */
export const evaluate = (expression: Expression, scope: unknown): unknown => {
  switch (expression._tag) {
    case "Literal":
      return expression.value
    case "List":
      return expression.items.map((item) => evaluate(item, scope))
    case "Path":
      return expression.segments.reduce(
        (value, segment) => property(value, evaluate(segment, scope)),
        property(scope, expression.root)
      )
    case "Unary": {
      const value = evaluate(expression.operand, scope)
      return expression.op === "!" ? !truthy(value) : typeof value === "number" ? -value : undefined
    }
    case "Conditional":
      return truthy(evaluate(expression.test, scope))
        ? evaluate(expression.then, scope)
        : evaluate(expression.otherwise, scope)
    case "Call":
      return functions[expression.fn]!.apply(expression.args.map((arg) => evaluate(arg, scope)))
    case "Binary": {
      const { op } = expression
      if (op === "&&") {
        const left = evaluate(expression.left, scope)
        return truthy(left) ? evaluate(expression.right, scope) : left
      }
      if (op === "||") {
        const left = evaluate(expression.left, scope)
        return truthy(left) ? left : evaluate(expression.right, scope)
      }
      const left = evaluate(expression.left, scope)
      const right = evaluate(expression.right, scope)
      switch (op) {
        case "==":
          return equals(left, right)
        case "!=":
          return !equals(left, right)
        case "in":
          return functions["contains"]!.apply([right, left])
        case "<":
        case "<=":
        case ">":
        case ">=":
          return compare(op, left, right)
        default:
          return arithmetic(op, left, right)
      }
    }
  }
}

/** Text with `{{ expression }}` holes. */
export interface Template {
  readonly parts: ReadonlyArray<string | Expression>
}

/** Parses a template; offsets (of an error, of paths) count from the start of the text. */
export const parseTemplate = (text: string): Either.Either<Template, ExpressionError> => {
  const parts: Array<string | Expression> = []
  let i = 0
  while (i < text.length) {
    const open = text.indexOf("{{", i)
    if (open === -1) {
      parts.push(text.slice(i))
      break
    }
    if (open > i) parts.push(text.slice(i, open))
    const close = text.indexOf("}}", open + 2)
    if (close === -1) return Either.left(new ExpressionError("\"{{\" without a closing \"}}\"", open))
    const parsed = parseAt(text.slice(open + 2, close), open + 2)
    if (Either.isLeft(parsed)) return Either.left(parsed.left)
    parts.push(parsed.right)
    i = close + 2
  }
  return Either.right({ parts })
}

/** Every path an expression or a template reads (for static checks such as "does this step exist"). */
export const paths = (source: Expression | Template): ReadonlyArray<Extract<Expression, { _tag: "Path" }>> => {
  const out: Array<Extract<Expression, { _tag: "Path" }>> = []
  const walk = (e: Expression): void => {
    switch (e._tag) {
      case "Literal":
        return
      case "Path":
        out.push(e)
        return e.segments.forEach(walk)
      case "List":
        return e.items.forEach(walk)
      case "Unary":
        return walk(e.operand)
      case "Binary":
        walk(e.left)
        return walk(e.right)
      case "Conditional":
        walk(e.test)
        walk(e.then)
        return walk(e.otherwise)
      case "Call":
        return e.args.forEach(walk)
    }
  }
  if ("parts" in source) source.parts.forEach((part) => typeof part === "string" ? undefined : walk(part))
  else walk(source)
  return out
}

/** The template's text with each hole's value (objects as JSON, undefined and null as ""). */
export const render = (template: Template, scope: unknown): string =>
  template.parts.map((part) => typeof part === "string" ? part : stringify(evaluate(part, scope))).join("")

/** A template that is exactly one `{{ expression }}` gives the value itself; others, the text. */
export const renderValue = (template: Template, scope: unknown): unknown => {
  const [only] = template.parts
  return template.parts.length === 1 && only !== undefined && typeof only !== "string"
    ? evaluate(only, scope)
    : render(template, scope)
}
