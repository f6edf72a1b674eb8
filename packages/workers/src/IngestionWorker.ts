/**
 * The ingestion worker: a durable consumer of `ingest.doc.requested`. Each request carries a
 * `DocumentInput` as its payload; the worker chunks, embeds and indexes it through the
 * KnowledgeStore, then publishes `ingest.doc.processed` with the counts and timings.
 *
 * Failures are retried by the bus after 1 s, 5 s and 25 s (`retryDelays`); a request that still
 * fails, or whose payload is not a document at all, is published as `ingest.doc.deadlettered`
 * (the dead-letter subject, with the reason and the original payload) and acknowledged, so a
 * poison document never blocks the queue. Event ids derive from the request's, so a request
 * redelivered after a crash publishes the same (deduplicated) outcome, and `add` is idempotent
 * by content hash: a document is indexed once.
 */
import { EventEnvelope } from "@tessera/domain/Event"
import { TenantId } from "@tessera/domain/Ids"
import { DocumentInput } from "@tessera/domain/Knowledge"
import { type Delivery, EventBus } from "@tessera/runtime/EventBus"
import { KnowledgeStore } from "@tessera/runtime/KnowledgeStore"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ParseResult from "effect/ParseResult"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"

export interface Options {
  /** The durable consumer (default "ingestion"): workers sharing it share the work. */
  readonly durable?: string
  /** Delays of the retries; after the last, the request is dead-lettered (default 1 s, 5 s, 25 s). */
  readonly retryDelays?: ReadonlyArray<Duration.DurationInput>
  /** Requests processed at once (default 4). */
  readonly concurrency?: number
}

const decodeInput = Schema.decodeUnknown(DocumentInput)
const decodeTenantId = Schema.decodeUnknownEither(TenantId)

const outcome = (
  request: EventEnvelope,
  type: "ingest.doc.processed" | "ingest.doc.deadlettered",
  payload: unknown
) =>
  new EventEnvelope({
    event_type: type,
    event_id: `${request.event_id}:${type === "ingest.doc.processed" ? "processed" : "deadlettered"}`,
    timestamp: DateTime.unsafeNow(),
    tenant_id: request.tenant_id,
    user_id: request.user_id,
    run_id: request.run_id,
    workflow: request.workflow,
    tier: null,
    metadata: { request_event_id: request.event_id },
    payload
  })

export const handle = (delivery: Delivery, retryDelays: ReadonlyArray<Duration.DurationInput>) =>
  Effect.gen(function*() {
    const bus = yield* EventBus
    const store = yield* KnowledgeStore
    const request = delivery.envelope
    const deadLetter = (reason: string) =>
      Effect.zipRight(
        bus.publish(outcome(request, "ingest.doc.deadlettered", { reason, attempts: delivery.deliveryCount, request: request.payload })),
        Effect.zipRight(Effect.logError(`ingestion request dead-lettered: ${reason}`), delivery.ack)
      )

    const input = yield* Effect.either(decodeInput(request.payload))
    if (input._tag === "Left") {
      return yield* deadLetter(`payload is not a document: ${ParseResult.TreeFormatter.formatErrorSync(input.left)}`)
    }
    const tenantId = decodeTenantId(request.tenant_id)
    if (tenantId._tag === "Left") return yield* deadLetter(`${JSON.stringify(request.tenant_id)} is not a tenant id`)
    const started = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
    const result = yield* Effect.either(store.add(tenantId.right, input.right))
    if (result._tag === "Left") {
      const retry = retryDelays[delivery.deliveryCount - 1]
      if (retry === undefined) return yield* deadLetter(result.left.message)
      yield* Effect.logWarning(`ingestion failed (attempt ${delivery.deliveryCount}); retrying in ${Duration.format(retry)}`, result.left)
      return yield* delivery.nak(retry)
    }
    const finished = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
    yield* bus.publish(outcome(request, "ingest.doc.processed", {
      document_id: result.right.document.id,
      source_key: result.right.document.sourceKey,
      created: result.right.created,
      chunks: result.right.document.chunkCount,
      duration_ms: finished - started,
      attempts: delivery.deliveryCount
    }))
    yield* delivery.ack
  }).pipe(Effect.annotateLogs({ tenant_id: delivery.envelope.tenant_id, event_id: delivery.envelope.event_id }))

/** Consumes until interrupted; a broken subscription is logged and resubscribed. */
export const run = (options?: Options) =>
  Effect.gen(function*() {
    const bus = yield* EventBus
    const retryDelays = options?.retryDelays ?? ["1 second", "5 seconds", "25 seconds"]
    yield* bus.subscribe({ durable: options?.durable ?? "ingestion", subjects: ["ingest.doc.requested"] }).pipe(
      Stream.mapEffect((delivery) => handle(delivery, retryDelays), { concurrency: options?.concurrency ?? 4 }),
      Stream.runDrain
    )
  }).pipe(
    Effect.tapErrorCause((cause) => Effect.logWarning("ingestion subscription failed; resubscribing", cause)),
    Effect.retry(Schedule.exponential("500 millis").pipe(Schedule.union(Schedule.spaced("30 seconds")))),
    Effect.annotateLogs("service", "ingestion-worker")
  )

export const layer = (options?: Options): Layer.Layer<never, never, EventBus | KnowledgeStore> =>
  Layer.scopedDiscard(Effect.forkScoped(run(options)))
