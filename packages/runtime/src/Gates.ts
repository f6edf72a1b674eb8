/**
 * The gates of a `validate` step. `json_schema` checks a value against a JSON Schema (the subset
 * workflows use: type, enum, const, required, properties, additionalProperties: false, items,
 * minItems, maxItems, minLength, maxLength, pattern, minimum, maximum); `score_threshold` compares
 * a number with a minimum; `factuality` measures how many of an answer's content words appear in
 * the passages it was grounded in. (`critic` needs a model and runs in the executor.)
 */

export interface GateResult {
  readonly gate: string
  readonly passed: boolean
  readonly detail: string
}

const typeOf = (value: unknown): string =>
  value === null ? "null" : Array.isArray(value) ? "array" : Number.isInteger(value) ? "integer" : typeof value

const isRecord = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

const matchesType = (value: unknown, type: unknown): boolean => {
  const actual = typeOf(value)
  const allowed = Array.isArray(type) ? type : [type]
  return allowed.some((t) => t === actual || (t === "number" && actual === "integer"))
}

/** The first violation of `schema` by `value`, as "path: what", or undefined when it conforms. */
export const jsonSchemaViolation = (schema: unknown, value: unknown, path = "$"): string | undefined => {
  if (!isRecord(schema)) return undefined
  if (schema.type !== undefined && !matchesType(value, schema.type)) {
    return `${path}: expected ${JSON.stringify(schema.type)}, got ${typeOf(value)}`
  }
  if (Array.isArray(schema.enum) && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(value))) {
    return `${path}: expected one of ${JSON.stringify(schema.enum)}`
  }
  if (schema.const !== undefined && JSON.stringify(schema.const) !== JSON.stringify(value)) {
    return `${path}: expected ${JSON.stringify(schema.const)}`
  }
  if (typeof value === "string") {
    if (typeof schema.minLength === "number" && value.length < schema.minLength) return `${path}: shorter than ${schema.minLength}`
    if (typeof schema.maxLength === "number" && value.length > schema.maxLength) return `${path}: longer than ${schema.maxLength}`
    if (typeof schema.pattern === "string" && !new RegExp(schema.pattern, "u").test(value)) {
      return `${path}: does not match ${schema.pattern}`
    }
  }
  if (typeof value === "number") {
    if (typeof schema.minimum === "number" && value < schema.minimum) return `${path}: less than ${schema.minimum}`
    if (typeof schema.maximum === "number" && value > schema.maximum) return `${path}: more than ${schema.maximum}`
  }
  if (Array.isArray(value)) {
    if (typeof schema.minItems === "number" && value.length < schema.minItems) return `${path}: fewer than ${schema.minItems} items`
    if (typeof schema.maxItems === "number" && value.length > schema.maxItems) return `${path}: more than ${schema.maxItems} items`
    for (const [i, item] of value.entries()) {
      const violation = jsonSchemaViolation(schema.items, item, `${path}[${i}]`)
      if (violation !== undefined) return violation
    }
  }
  if (isRecord(value)) {
    if (Array.isArray(schema.required)) {
      const missing = schema.required.find((key) => typeof key === "string" && !(key in value))
      if (typeof missing === "string") return `${path}.${missing}: is required`
    }
    const properties = isRecord(schema.properties) ? schema.properties : {}
    for (const [key, sub] of Object.entries(properties)) {
      if (key in value) {
        const violation = jsonSchemaViolation(sub, value[key], `${path}.${key}`)
        if (violation !== undefined) return violation
      }
    }
    if (schema.additionalProperties === false) {
      const extra = Object.keys(value).find((key) => !(key in properties))
      if (extra !== undefined) return `${path}.${extra}: is not allowed`
    }
  }
  return undefined
}

export const jsonSchema = (schema: unknown, value: unknown): GateResult => {
  const violation = jsonSchemaViolation(schema, value)
  return { gate: "json_schema", passed: violation === undefined, detail: violation ?? "conforms" }
}

export const scoreThreshold = (score: unknown, min: number): GateResult =>
  typeof score === "number" && Number.isFinite(score)
    ? { gate: "score_threshold", passed: score >= min, detail: `score ${score} ${score >= min ? ">=" : "<"} ${min}` }
    : { gate: "score_threshold", passed: false, detail: `score is not a number (${typeOf(score)})` }

const stopWords = new Set(
  "a an and are as at be by for from has have how i in is it its of on or our that the their this to was we were what when where which who will with you your".split(" ")
)
const contentWords = (text: string): ReadonlyArray<string> =>
  (text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []).filter((w) => w.length > 2 && !stopWords.has(w))

/** The share of the answer's content words found in the passages' text. */
export const groundedShare = (answer: string, passages: ReadonlyArray<string>): number => {
  const words = contentWords(answer)
  if (words.length === 0) return 1
  const known = new Set(passages.flatMap(contentWords))
  return words.filter((w) => known.has(w)).length / words.length
}

const passageTexts = (passages: unknown): ReadonlyArray<string> =>
  Array.isArray(passages)
    ? passages.flatMap((p) => (typeof p === "string" ? [p] : isRecord(p) && typeof p.text === "string" ? [p.text] : []))
    : []

export const factuality = (value: unknown, passages: unknown, min: number): GateResult => {
  const text = typeof value === "string" ? value : isRecord(value) && typeof value.text === "string" ? value.text : JSON.stringify(value)
  const share = groundedShare(text, passageTexts(passages))
  return {
    gate: "factuality",
    passed: share >= min,
    detail: `${Math.round(share * 100)}% of the answer's content words are in the passages (min ${Math.round(min * 100)}%)`
  }
}
