/**
 * User passwords: scrypt (N = 2^15, r = 8, p = 1, 32-byte salt, 64-byte key), stored as
 * `scrypt$<salt b64url>$<key b64url>`; compared in constant time.
 */
import * as Effect from "effect/Effect"
import { randomBytes, scrypt, timingSafeEqual } from "node:crypto"

const params = { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 }

const derive = (password: string, salt: Buffer) =>
  Effect.async<Buffer, Error>((resume) => {
    scrypt(password.normalize("NFKC"), salt, 64, params, (error, key) => resume(error === null ? Effect.succeed(key) : Effect.fail(error)))
  })

export const hash = (password: string): Effect.Effect<string> =>
  Effect.gen(function*() {
    const salt = randomBytes(32)
    const key = yield* derive(password, salt)
    return `scrypt$${salt.toString("base64url")}$${key.toString("base64url")}`
  }).pipe(Effect.orDie)

/** A stand-in compared when there is no user, so an unknown e-mail costs as much as a wrong password. */
const decoy = `scrypt$${randomBytes(32).toString("base64url")}$${randomBytes(64).toString("base64url")}`

export const verify = (password: string, stored: string | null): Effect.Effect<boolean> =>
  Effect.gen(function*() {
    const [scheme, salt, key] = (stored ?? decoy).split("$")
    if (scheme !== "scrypt" || salt === undefined || key === undefined) return false
    const expected = Buffer.from(key, "base64url")
    const actual = yield* derive(password, Buffer.from(salt, "base64url"))
    return stored !== null && expected.length === actual.length && timingSafeEqual(expected, actual)
  }).pipe(Effect.orDie)
