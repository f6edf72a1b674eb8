/**
 * Branded identifiers. Every id is a non-empty string with a safe alphabet so it can sit in a
 * cluster entity id, a NATS subject token or a log line without escaping.
 */
import * as Schema from "effect/Schema"

const idPattern = /^[A-Za-z0-9_-]{1,64}$/

const Id = <const B extends string>(brand: B) =>
  Schema.String.pipe(
    Schema.pattern(idPattern, {
      message: () => `${brand} must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'`
    }),
    Schema.brand(brand)
  )

export const TenantId = Id("TenantId")
export type TenantId = typeof TenantId.Type

export const SessionId = Id("SessionId")
export type SessionId = typeof SessionId.Type

export const RunId = Id("RunId")
export type RunId = typeof RunId.Type

export const UserId = Id("UserId")
export type UserId = typeof UserId.Type

export const ApiKeyId = Id("ApiKeyId")
export type ApiKeyId = typeof ApiKeyId.Type

export const MessageId = Id("MessageId")
export type MessageId = typeof MessageId.Type
