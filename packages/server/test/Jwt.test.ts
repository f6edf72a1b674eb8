/**
 * Access tokens. Through HTTP: an API key is exchanged for an RS256 JWT that authenticates, its
 * key is published at /.well-known/jwks.json, and every forged or stale variant is refused with
 * 401 — `alg: none`, HS256 signed with the public key, a wrong issuer or audience, an expired
 * token, one not valid yet, an unknown key id; a key's token once the key is revoked or rotated
 * past its overlap (a user's token is unaffected). On simulated time: key rotation keeps the tokens
 * of the old key valid until they expire, then the old key leaves the JWKS.
 */
import { assert, layer } from "@effect/vitest"
import { TenantId } from "@tessera/domain/Ids"
import { Principal } from "@tessera/domain/Principal"
import { Database } from "@tessera/runtime/Database"
import * as TestDatabase from "@tessera/runtime/TestDatabase"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as TestClock from "effect/TestClock"
import * as Jose from "jose"
import { createPublicKey } from "node:crypto"
import * as Jwt from "../src/Jwt.js"
import * as EdgeNode from "./EdgeNode.js"

const { http, tenant } = EdgeNode

const unauthorized = (reply: EdgeNode.Reply) => {
  assert.strictEqual(reply.status, 401, reply.text)
  assert.strictEqual(reply.body.code, "invalid_token", reply.text)
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url")

layer(EdgeNode.layer(), { timeout: 120_000, excludeTestServices: true })("Jwt over HTTP", (it) => {
  it.effect("an API key is exchanged for a token that authenticates; forged and stale tokens are 401", () =>
    Effect.gen(function*() {
      const alpha = yield* tenant("alpha", "pro", ["read", "write"])
      const issued = yield* http("POST", "/v1/auth/token", { key: alpha.key })
      assert.strictEqual(issued.status, 200, issued.text)
      assert.strictEqual(issued.body.token_type, "Bearer")
      assert.strictEqual(issued.body.expires_in, 3600)
      const token = String(issued.body.access_token)
      const me = yield* http("GET", "/v1/auth/whoami", { key: token })
      assert.strictEqual(me.status, 200, me.text)
      assert.strictEqual(me.body.tenantId, "alpha")
      assert.strictEqual(me.body.credential, "jwt")
      // A token is not exchanged for another token.
      assert.strictEqual((yield* http("POST", "/v1/auth/token", { key: token })).status, 401)

      const jwks = yield* http("GET", "/.well-known/jwks.json")
      assert.strictEqual(jwks.status, 200)
      const keys = jwks.body.keys as ReadonlyArray<Jose.JWK & { kid: string }>
      const header = Jose.decodeProtectedHeader(token)
      const published = keys.find((k) => k.kid === header.kid)
      assert.isDefined(published)
      assert.notProperty(published, "d")

      const claims = Jose.decodeJwt(token)
      // alg none: the same claims, no signature.
      unauthorized(yield* http("GET", "/v1/auth/whoami", { key: `${b64({ alg: "none", typ: "JWT" })}.${b64(claims)}.` }))
      // HS256 with the public key as the HMAC secret (the classic key-confusion forgery).
      const publicPem = String(createPublicKey({ key: { kty: "RSA", n: published!.n!, e: published!.e! }, format: "jwk" }).export({ type: "spki", format: "pem" }))
      for (const secret of [publicPem, JSON.stringify(published)]) {
        const forged = yield* Effect.promise(() =>
          new Jose.SignJWT(claims).setProtectedHeader({ alg: "HS256", kid: header.kid! }).sign(new TextEncoder().encode(secret))
        )
        unauthorized(yield* http("GET", "/v1/auth/whoami", { key: forged }))
      }

      // Signed with the real private key, but wrong in one claim each.
      const db = yield* Database
      const row = (yield* db.sql<{ private_jwk: Jose.JWK }>`SELECT private_jwk FROM signing_keys WHERE kid = ${header.kid!}`)[0]!
      const privateKey = yield* Effect.promise(() => Jose.importJWK(row.private_jwk, "RS256"))
      const now = Math.floor(Date.now() / 1000)
      const sign = (patch: Record<string, unknown>, kid = header.kid!) =>
        Effect.promise(() =>
          new Jose.SignJWT({ ...claims, ...patch }).setProtectedHeader({ alg: "RS256", kid }).sign(privateKey)
        )
      // The control: the same signing path with nothing changed is accepted.
      assert.strictEqual((yield* http("GET", "/v1/auth/whoami", { key: yield* sign({}) })).status, 200)
      unauthorized(yield* http("GET", "/v1/auth/whoami", { key: yield* sign({ iss: "someone-else" }) }))
      unauthorized(yield* http("GET", "/v1/auth/whoami", { key: yield* sign({ aud: "another-api" }) }))
      unauthorized(yield* http("GET", "/v1/auth/whoami", { key: yield* sign({ iat: now - 7200, nbf: now - 7200, exp: now - 3600 }) }))
      unauthorized(yield* http("GET", "/v1/auth/whoami", { key: yield* sign({ nbf: now + 3600 }) }))
      unauthorized(yield* http("GET", "/v1/auth/whoami", { key: yield* sign({}, "k_unknown") }))
      unauthorized(yield* http("GET", "/v1/auth/whoami", { key: `${token.slice(0, -4)}AAAA` }))
      unauthorized(yield* http("GET", "/v1/auth/whoami", { key: "not.a.jwt" }))
    }))

  it.effect("a user's e-mail and password are exchanged for a token with the scopes of the user's role", () =>
    Effect.gen(function*() {
      const owner = yield* tenant("omega")
      const created = yield* http("POST", "/v1/admin/users", {
        key: owner.key,
        body: { id: "u_vera", email: "vera@example.com", role: "viewer", password: "correct horse battery" }
      })
      assert.strictEqual(created.status, 201, created.text)
      assert.notInclude(created.text, "correct horse")
      const login = (email: string, password: string) =>
        http("POST", "/v1/auth/password", { body: { tenant_id: "omega", email, password } })
      const ok = yield* login("Vera@example.com", "correct horse battery")
      assert.strictEqual(ok.status, 200, ok.text)
      assert.strictEqual(ok.body.scope, "read")
      const me = yield* http("GET", "/v1/auth/whoami", { key: String(ok.body.access_token) })
      assert.strictEqual(me.body.subject, "user:u_vera")
      // A viewer's token cannot write.
      assert.strictEqual((yield* http("POST", "/v1/chat/messages", { key: String(ok.body.access_token), body: { message: "hi", user_id: "u" } })).status, 403)
      // Wrong password and unknown e-mail look the same.
      const wrong = yield* login("vera@example.com", "incorrect horse")
      const unknown = yield* login("nobody@example.com", "correct horse battery")
      for (const reply of [wrong, unknown]) {
        assert.strictEqual(reply.status, 401)
        assert.strictEqual(reply.body.code, "invalid_credentials")
      }
      // Guessing is limited per e-mail: 10 attempts in a row, then 429.
      const attempts = yield* Effect.forEach(Array.from({ length: 10 }), () => login("vera@example.com", "guess guess guess"))
      assert.isTrue(attempts.some((r) => r.status === 429))
      assert.strictEqual(attempts.filter((r) => r.status === 401).length, 8)
    }))

  it.effect("a key's token is refused at once when the key is revoked or rotated past its overlap; a user's token is not", () =>
    Effect.gen(function*() {
      const owner = yield* tenant("sigma")
      const exchange = (key: string) => Effect.map(http("POST", "/v1/auth/token", { key }), (reply) => String(reply.body.access_token))
      const revokedCode = (reply: EdgeNode.Reply) => {
        assert.strictEqual(reply.status, 401, reply.text)
        assert.strictEqual(reply.body.code, "credential_revoked", reply.text)
      }
      const worker = yield* http("POST", "/v1/admin/api-keys", { key: owner.key, body: { name: "worker", scopes: ["read", "write"] } })
      assert.strictEqual(worker.status, 201, worker.text)
      const workerId = String((worker.body.key as { id: string }).id)
      const workerToken = yield* exchange(String(worker.body.api_key))
      assert.strictEqual(Jose.decodeJwt(workerToken).key, workerId)
      assert.strictEqual((yield* http("GET", "/v1/auth/whoami", { key: workerToken })).status, 200)

      assert.strictEqual((yield* http("POST", `/v1/admin/api-keys/${workerId}/revoke`, { key: owner.key })).status, 200)
      revokedCode(yield* http("GET", "/v1/auth/whoami", { key: workerToken }))
      revokedCode(yield* http("GET", "/v1/admin/api-keys", { key: workerToken }))

      // Rotation: the old key's token lives through the overlap and is refused once it is over.
      const rotating = yield* http("POST", "/v1/admin/api-keys", { key: owner.key, body: { name: "rotating", scopes: ["read"] } })
      const rotatingId = String((rotating.body.key as { id: string }).id)
      const rotatingToken = yield* exchange(String(rotating.body.api_key))
      const overlapped = yield* http("POST", `/v1/admin/api-keys/${rotatingId}/rotate`, { key: owner.key, body: { overlap_seconds: 3600 } })
      assert.strictEqual(overlapped.status, 201, overlapped.text)
      assert.strictEqual((yield* http("GET", "/v1/auth/whoami", { key: rotatingToken })).status, 200)
      // Rotating it again with no overlap ends the old key now.
      const ended = yield* http("POST", `/v1/admin/api-keys/${rotatingId}/rotate`, { key: owner.key, body: { overlap_seconds: 0 } })
      assert.strictEqual(ended.status, 201, ended.text)
      revokedCode(yield* http("GET", "/v1/auth/whoami", { key: rotatingToken }))

      // A user's token has no key behind it: revoking keys leaves it working.
      const created = yield* http("POST", "/v1/admin/users", {
        key: owner.key,
        body: { id: "u_sam", email: "sam@example.com", role: "agent", password: "a long enough password" }
      })
      assert.strictEqual(created.status, 201, created.text)
      const login = yield* http("POST", "/v1/auth/password", { body: { tenant_id: "sigma", email: "sam@example.com", password: "a long enough password" } })
      const userToken = String(login.body.access_token)
      assert.isNull(Jose.decodeJwt(userToken).key)
      assert.strictEqual((yield* http("POST", `/v1/admin/api-keys/${owner.keyId}/revoke`, { key: owner.key })).status, 200)
      const me = yield* http("GET", "/v1/auth/whoami", { key: userToken })
      assert.strictEqual(me.status, 200, me.text)
      assert.strictEqual(me.body.subject, "user:u_sam")
    }))
})

layer(TestDatabase.layer)("Jwt rotation", (it) => {
  const settings: Jwt.Settings = {
    issuer: "tessera",
    audience: "tessera-api",
    ttl: Duration.hours(1),
    rotation: Duration.minutes(30)
  }
  const principal = new Principal({ tenantId: TenantId.make("acme"), subject: "key:k1", keyId: "k1", scopes: ["read"], credential: "jwt" })

  it.effect("a rotated key keeps verifying its tokens until they expire, then leaves the JWKS", () =>
    Effect.gen(function*() {
      const jwt = yield* Jwt.make(settings)
      const first = yield* jwt.sign(principal)
      const firstKid = Jose.decodeProtectedHeader(first.token).kid
      yield* TestClock.adjust("31 minutes")
      const second = yield* jwt.sign(principal)
      const secondKid = Jose.decodeProtectedHeader(second.token).kid
      assert.notStrictEqual(secondKid, firstKid)
      // Both verify; both keys are published.
      assert.strictEqual((yield* jwt.verify(first.token)).subject, "key:k1")
      assert.strictEqual((yield* jwt.verify(second.token)).subject, "key:k1")
      assert.sameMembers((yield* jwt.jwks).map((k) => k.kid), [firstKid!, secondKid!])
      // An hour after the rotation the old key's tokens have all expired; it is no longer published.
      yield* TestClock.adjust("61 minutes")
      assert.deepStrictEqual((yield* jwt.jwks).map((k) => k.kid), [secondKid!])
      const expired = yield* Effect.flip(jwt.verify(first.token))
      assert.strictEqual(expired._tag, "InvalidToken")
    }))
})
