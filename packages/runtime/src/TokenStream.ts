/**
 * The token channel: text deltas of model answers, from the node that runs a step to every
 * node whose WebSocket clients follow the session. Tokens are not events: no outbox, no
 * JetStream storage, no redelivery; a delta that cannot be sent is dropped, and a subscriber
 * that falls behind loses the oldest ones. Adapters: NATS core publish/subscribe on the event
 * bus's connection (`NatsEventBus`), an in-process channel (`MemoryEventBus`).
 *
 * The wire subject is `<prefix>_tokens.<tenant_id>.<session_id>`: the tenant is in the subject,
 * and the subject lies outside the event stream's `<prefix>.>` so JetStream never stores it.
 * The payload is the JSON of a `TokenDelta`.
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as Stream from "effect/Stream"
import type { EventBusError } from "./EventBus.js"

/** One text delta of one answer of one run step; `seq` counts from 0 per answer attempt. */
export class TokenDelta extends Schema.Class<TokenDelta>("TokenDelta")({
  tenantId: Schema.String,
  sessionId: Schema.String,
  runId: Schema.String,
  stepId: Schema.String,
  seq: Schema.NonNegativeInt,
  text: Schema.String
}) {}

export class TokenStream extends Context.Tag("@tessera/runtime/TokenStream")<TokenStream, {
  /** Sends the delta without waiting for the bus; never fails (an unsendable delta is dropped and logged). */
  readonly publish: (delta: TokenDelta) => Effect.Effect<void>
  /** Every tenant's deltas that reach this node from now on, in the order each publisher sent them. */
  readonly subscribe: Stream.Stream<TokenDelta, EventBusError>
}>() {}

/** How many deltas a subscriber may hold before it loses the oldest. */
export const subscriberCapacity = 4096

const token = /^[A-Za-z0-9_-]+$/

/** The subject of a delta; undefined when its tenant or session cannot be one subject token. */
export const subjectOf = (prefix: string, delta: TokenDelta): string | undefined =>
  token.test(delta.tenantId) && token.test(delta.sessionId) ? `${prefix}_tokens.${delta.tenantId}.${delta.sessionId}` : undefined

/** The subscription of every tenant's deltas. */
export const allSubjects = (prefix: string): string => `${prefix}_tokens.*.*`

export const encode = Schema.encodeSync(Schema.parseJson(TokenDelta))

export const decode = Schema.decodeUnknownOption(Schema.parseJson(TokenDelta))
