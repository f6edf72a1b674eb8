import { createHash } from "node:crypto"

/** A stable id for what a call creates, derived from its idempotency key (never from a clock). */
export const stableId = (prefix: string, key: string): string =>
  `${prefix}_${createHash("sha256").update(key).digest("hex").slice(0, 24)}`
