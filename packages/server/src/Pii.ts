/**
 * PII redaction for logs and audit details (`layerLogger` redacts every log line's message and
 * annotations): e-mail addresses, card numbers (13–19 digits that
 * pass the Luhn check, spaces or dashes allowed) and phone numbers (8–15 digits, optionally with
 * `+`, spaces, dots, dashes or parentheses) are replaced by `[email]`, `[card]` and `[phone]`.
 * Digits that are part of a word (an id such as `key_18da384886194a33`) are left alone.
 */
import * as HashMap from "effect/HashMap"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as HashSet from "effect/HashSet"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"

const email = /[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/g
/** A run of digits standing on its own: digits inside an identifier (`key_18da384886194a33`) are not a number. */
const digitRun = /(?<!\w)\+?\d[\d\s().-]{6,}\d(?!\w)/g

/** The Luhn checksum of a digit string. */
export const luhn = (digits: string): boolean => {
  let sum = 0
  let double = false
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48
    if (double) {
      d *= 2
      if (d > 9) d -= 9
    }
    sum += d
    double = !double
  }
  return sum % 10 === 0
}

export const redactText = (text: string): string =>
  text.replace(email, "[email]").replace(digitRun, (match) => {
    const digits = match.replace(/\D/g, "")
    if (digits.length >= 13 && digits.length <= 19 && luhn(digits)) return "[card]"
    if (digits.length >= 8 && digits.length <= 15) return "[phone]"
    return match
  })

/** A JSON-like value with every string redacted (keys are kept). */
export const redact = (value: unknown): unknown => {
  if (typeof value === "string") return redactText(value)
  if (Array.isArray(value)) return value.map(redact)
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redact(v)]))
  }
  return value
}

/** `logger` with PII redacted from messages and annotations. */
export const redacting = <O>(logger: Logger.Logger<unknown, O>): Logger.Logger<unknown, O> =>
  Logger.mapInputOptions(logger, (options) => ({
    ...options,
    message: redact(options.message),
    annotations: HashMap.map(options.annotations, redact)
  }))

/** Every installed logger (the default, the pretty one of `runMain`, …) replaced by its redacting version. */
export const layerLogger: Layer.Layer<never> = Layer.scopedDiscard(
  Effect.locallyScopedWith(FiberRef.currentLoggers, HashSet.map((logger) => redacting(logger)))
)
