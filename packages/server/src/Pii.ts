/**
 * PII redaction for logs and audit details: e-mail addresses, card numbers (13–19 digits that
 * pass the Luhn check, spaces or dashes allowed) and phone numbers (8–15 digits, optionally with
 * `+`, spaces, dots, dashes or parentheses) are replaced by `[email]`, `[card]` and `[phone]`.
 */

const email = /[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/g
const digitRun = /\+?\d[\d\s().-]{6,}\d/g

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
