/**
 * Access tokens: RS256 JWTs (jose), `JWT_TTL` long (default 1 hour), issued by
 * `POST /v1/auth/token` and verified on every request. Only RS256 is accepted, so `alg: none`
 * and HS256 signed with the public key are refused; so are a wrong issuer (`JWT_ISSUER`) or
 * audience (`JWT_AUDIENCE`), an expired token and one not valid yet. A token exchanged for an API
 * key names the key in its `key` claim (the Authenticator refuses it once the key is not live).
 *
 * Signing keys live in `signing_keys`, shared by every node: the newest signs; after
 * `JWT_KEY_ROTATION` (default 24 hours) a node makes a new one and retires the old, which stays
 * published at `/.well-known/jwks.json` (and accepted) until its last token has expired. A node
 * that sees an unknown `kid` reloads the keys once, so tokens signed elsewhere verify at once.
 */
import type { SqlError } from "@effect/sql/SqlError"
import { Scope } from "@tessera/domain/ApiKey"
import type { Jwk } from "@tessera/domain/AuthToken"
import { TenantId } from "@tessera/domain/Ids"
import { Principal } from "@tessera/domain/Principal"
import { Database } from "@tessera/runtime/Database"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as SynchronizedRef from "effect/SynchronizedRef"
import * as Jose from "jose"
import { randomBytes } from "node:crypto"

export class InvalidToken extends Schema.TaggedError<InvalidToken>()("InvalidToken", {
  reason: Schema.String
}) {
  readonly code = "invalid_token"
  override get message() {
    return `the access token was refused: ${this.reason}`
  }
}

export interface Settings {
  readonly issuer: string
  readonly audience: string
  readonly ttl: Duration.Duration
  readonly rotation: Duration.Duration
}

export const settingsConfig: Config.Config<Settings> = Config.all({
  issuer: Config.string("JWT_ISSUER").pipe(Config.withDefault("tessera")),
  audience: Config.string("JWT_AUDIENCE").pipe(Config.withDefault("tessera-api")),
  ttl: Config.duration("JWT_TTL").pipe(Config.withDefault(Duration.hours(1))),
  rotation: Config.duration("JWT_KEY_ROTATION").pipe(Config.withDefault(Duration.hours(24)))
})

interface KeyRow {
  readonly kid: string
  readonly private_jwk: Jose.JWK
  readonly public_jwk: Jose.JWK
  readonly created_at: Date
  readonly retired_at: Date | null
}

type ImportedKey = Awaited<ReturnType<typeof Jose.importJWK>>

interface LoadedKey {
  readonly kid: string
  readonly createdAt: number
  readonly retiredAt: number | null
  readonly privateKey: ImportedKey
  readonly publicKey: ImportedKey
  readonly publicJwk: Jose.JWK
}

const ClaimsSchema = Schema.Struct({
  sub: Schema.String,
  tid: TenantId,
  scope: Schema.String,
  key: Schema.optional(Schema.NullOr(Schema.String))
})

const jose = <A>(what: string, f: () => Promise<A>) =>
  Effect.tryPromise({ try: f, catch: (error) => new InvalidToken({ reason: `${what}: ${error instanceof Error ? error.message : String(error)}` }) })

export const make = (settings: Settings) =>
  Effect.gen(function*() {
    const db = yield* Database
    const sql = db.sql
    const keys = yield* SynchronizedRef.make<ReadonlyArray<LoadedKey>>([])

    const load = Effect.gen(function*() {
      const rows = yield* sql<KeyRow>`SELECT * FROM signing_keys ORDER BY created_at DESC`
      return yield* Effect.forEach(rows, (row) =>
        Effect.promise(async (): Promise<LoadedKey> => ({
          kid: row.kid,
          createdAt: row.created_at.getTime(),
          retiredAt: row.retired_at?.getTime() ?? null,
          privateKey: await Jose.importJWK(row.private_jwk, "RS256"),
          publicKey: await Jose.importJWK(row.public_jwk, "RS256"),
          publicJwk: row.public_jwk
        })))
    })

    const reload = SynchronizedRef.updateAndGetEffect(keys, () => load)

    /** A new signing key; the previous ones are retired now (they keep verifying until they age out). */
    const rotate: Effect.Effect<void, SqlError> = SynchronizedRef.updateAndGetEffect(keys, () =>
      Effect.gen(function*() {
        const pair = yield* Effect.promise(() => Jose.generateKeyPair("RS256", { extractable: true, modulusLength: 2048 }))
        const kid = `k_${randomBytes(8).toString("hex")}`
        const privateJwk = yield* Effect.promise(() => Jose.exportJWK(pair.privateKey))
        const publicJwk = { ...(yield* Effect.promise(() => Jose.exportJWK(pair.publicKey))), kid, alg: "RS256", use: "sig" }
        const now = new Date(yield* Clock.currentTimeMillis)
        yield* sql.withTransaction(Effect.gen(function*() {
          yield* sql`UPDATE signing_keys SET retired_at = ${now} WHERE retired_at IS NULL`
          yield* sql`INSERT INTO signing_keys ${
            sql.insert({ kid, private_jwk: JSON.stringify(privateJwk), public_jwk: JSON.stringify(publicJwk), created_at: now })
          }`
        }))
        return yield* load
      })).pipe(Effect.asVoid)

    /** The key to sign with: the newest, rotated first when it is older than the rotation period. */
    const signingKey = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const newest = (yield* SynchronizedRef.get(keys))[0]
      if (newest !== undefined && newest.retiredAt === null && now - newest.createdAt < Duration.toMillis(settings.rotation)) return newest
      const reloaded = (yield* reload)[0]
      if (reloaded !== undefined && reloaded.retiredAt === null && now - reloaded.createdAt < Duration.toMillis(settings.rotation)) return reloaded
      yield* rotate
      return (yield* SynchronizedRef.get(keys))[0]!
    })

    /** Keys whose tokens may still be alive: the current ones, and those retired less than a TTL ago. */
    const publishable = (all: ReadonlyArray<LoadedKey>, now: number) =>
      all.filter((k) => k.retiredAt === null || now - k.retiredAt < Duration.toMillis(settings.ttl))

    const sign = (principal: Principal, options: { readonly issuedAt?: number; readonly ttl?: Duration.Duration } = {}) =>
      Effect.gen(function*() {
        const key = yield* signingKey
        const now = options.issuedAt ?? (yield* Clock.currentTimeMillis)
        const ttl = options.ttl ?? settings.ttl
        const iat = Math.floor(now / 1000)
        const token = yield* Effect.promise(() =>
          new Jose.SignJWT({ tid: principal.tenantId, scope: principal.scopes.join(" "), key: principal.keyId })
            .setProtectedHeader({ alg: "RS256", kid: key.kid, typ: "JWT" })
            .setSubject(principal.subject)
            .setIssuer(settings.issuer)
            .setAudience(settings.audience)
            .setIssuedAt(iat)
            .setNotBefore(iat)
            .setExpirationTime(iat + Math.floor(Duration.toSeconds(ttl)))
            .setJti(randomBytes(12).toString("base64url"))
            .sign(key.privateKey)
        )
        return { token, expiresIn: Math.floor(Duration.toSeconds(ttl)) }
      })

    const verify = (token: string): Effect.Effect<Principal, InvalidToken | SqlError> =>
      Effect.gen(function*() {
        const header = yield* Effect.try({
          try: () => Jose.decodeProtectedHeader(token),
          catch: () => new InvalidToken({ reason: "not a JWT" })
        })
        if (header.alg !== "RS256") return yield* new InvalidToken({ reason: `algorithm ${String(header.alg)} is not accepted` })
        const now = yield* Clock.currentTimeMillis
        const find = (all: ReadonlyArray<LoadedKey>) => publishable(all, now).find((k) => k.kid === header.kid)
        const key = find(yield* SynchronizedRef.get(keys)) ?? find(yield* reload)
        if (key === undefined) return yield* new InvalidToken({ reason: "unknown signing key" })
        const { payload } = yield* jose("verification", () =>
          Jose.jwtVerify(token, key.publicKey, {
            algorithms: ["RS256"],
            issuer: settings.issuer,
            audience: settings.audience,
            currentDate: new Date(now),
            requiredClaims: ["exp", "iat", "sub"]
          }))
        const claims = yield* Schema.decodeUnknown(ClaimsSchema)(payload).pipe(
          Effect.mapError(() => new InvalidToken({ reason: "claims are missing or malformed" }))
        )
        const scopes = yield* Schema.decodeUnknown(Schema.Array(Scope))(claims.scope.split(" ").filter((s) => s !== "")).pipe(
          Effect.mapError(() => new InvalidToken({ reason: "unknown scope" }))
        )
        return new Principal({
          tenantId: claims.tid,
          subject: claims.sub,
          keyId: claims.key ?? null,
          scopes,
          credential: "jwt"
        })
      })

    const jwks: Effect.Effect<ReadonlyArray<Jwk>, SqlError> = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const all = yield* reload
      return publishable(all, now).map((k) => ({
        kty: String(k.publicJwk.kty),
        kid: k.kid,
        alg: "RS256",
        use: "sig",
        n: String(k.publicJwk.n),
        e: String(k.publicJwk.e)
      }))
    })

    yield* reload.pipe(Effect.orDie)
    return { sign, verify, jwks, rotate, settings } as const
  })

export class Jwt extends Effect.Service<Jwt>()("@tessera/server/Jwt", {
  effect: Effect.flatMap(settingsConfig, make).pipe(Effect.orDie)
}) {}

export const layer: Layer.Layer<Jwt, never, Database> = Jwt.Default
