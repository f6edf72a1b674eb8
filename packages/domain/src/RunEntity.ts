/**
 * The Run host (entity id `<tenant>/<partition>`): executes the runs of one of the tenant's
 * `partitions` run partitions, each run event-sourced on its journal in Postgres. A run's
 * partition is a hash of its id, the same on every node, so all of a run's messages reach the one
 * host that owns it: a single writer per run, as with an entity per run, without activating an
 * entity for every run (an activation costs more CPU than the run's whole journal; Restate's
 * partition processors make the same trade). `Start` is idempotent: it replays the journal and
 * goes on from the first unfinished step, so the recovery scan may send it for any run at any time.
 * A caller that has just recorded the run (Session.Send) passes it along as `requested`, and the
 * host starts from it without reading the journal back.
 *
 * Callers address runs through `handles` (tenant + run id), not through host ids.
 */
import { Entity } from "@effect/cluster"
import type { AlreadyProcessingMessage, MailboxFull, PersistenceError } from "@effect/cluster/ClusterError"
import type { Sharding } from "@effect/cluster/Sharding"
import { Rpc } from "@effect/rpc"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { RunNotFound, StorageError } from "./Errors.js"
import { RunId, SessionId, type TenantId, UserId } from "./Ids.js"
import { Run } from "./Run.js"

/** Run partitions per tenant. Part of the address of every run: changing it moves runs between hosts. */
export const partitions = 16

/** The partition of a run: FNV-1a of its id. */
export const partitionOf = (runId: string): number => {
  let hash = 0x811c9dc5
  for (let i = 0; i < runId.length; i++) {
    hash ^= runId.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193)
  }
  return (hash >>> 0) % partitions
}

/** The id of the host of a run: `<tenant>/<partition>`. */
export const entityId = (tenantId: TenantId, runId: RunId): string => `${tenantId}/${partitionOf(runId)}`

const runPayload = { runId: RunId }

/**
 * The run as its caller has just recorded it (committed, still `requested`, no steps yet): what
 * the host would otherwise read back from the journal.
 */
export class RequestedRun extends Schema.Class<RequestedRun>("RequestedRun")({
  workflow: Schema.String,
  input: Schema.Unknown,
  sessionId: Schema.NullOr(SessionId),
  userId: Schema.NullOr(UserId)
}) {}

/**
 * Sets the run going on its host and answers at once; `Status` follows it. With `requested` the
 * host trusts it instead of loading the journal: a late or repeated `Start` of a run that has
 * meanwhile moved on then finds its first step already journaled and stops (JournalConflict),
 * having at most repeated that step's side effect under the same idempotency key, as after a crash.
 */
export const Start = Rpc.make("Start", {
  payload: { ...runPayload, requested: Schema.optional(RequestedRun) },
  error: Schema.Union(RunNotFound, StorageError)
})

/**
 * Internal: the host sends this to itself while it has runs in flight and answers it when the
 * last one ends, so it is not passivated under them (an entity with a message in hand is not)
 * without any caller waiting.
 */
export const Hold = Rpc.make("Hold")

export const Status = Rpc.make("Status", {
  payload: runPayload,
  success: Run,
  error: Schema.Union(RunNotFound, StorageError)
})

export const Cancel = Rpc.make("Cancel", {
  payload: { ...runPayload, reason: Schema.String.pipe(Schema.maxLength(500)) },
  success: Run,
  error: Schema.Union(RunNotFound, StorageError)
})

/**
 * Delivers a signal to the run (a human approval, a webhook's answer): its `wait` step for
 * `name` goes on with `payload`. Stored durably first, so a signal that arrives before the run
 * waits, or while its runner restarts, is not lost; a second signal of the same name is ignored.
 */
export const Signal = Rpc.make("Signal", {
  payload: {
    ...runPayload,
    name: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(200)),
    payload: Schema.Unknown
  },
  error: Schema.Union(RunNotFound, StorageError)
})

export const RunEntity = Entity.make("Run", [Start, Hold, Status, Cancel, Signal])

/** The cluster could not deliver a message. */
type Undelivered = MailboxFull | AlreadyProcessingMessage | PersistenceError

/** Typed handles on runs by tenant and run id; every call goes to the run's host. */
export const handles: Effect.Effect<
  (tenantId: TenantId, runId: RunId) => {
    readonly Start: (requested?: RequestedRun) => Effect.Effect<void, RunNotFound | StorageError | Undelivered>
    readonly Status: () => Effect.Effect<Run, RunNotFound | StorageError | Undelivered>
    readonly Cancel: (reason: string) => Effect.Effect<Run, RunNotFound | StorageError | Undelivered>
    readonly Signal: (name: string, payload: unknown) => Effect.Effect<void, RunNotFound | StorageError | Undelivered>
  },
  never,
  Sharding
> = Effect.map(RunEntity.client, (hosts) => (tenantId, runId) => {
  const host = hosts(entityId(tenantId, runId))
  return {
    Start: (requested) => host.Start(requested === undefined ? { runId } : { runId, requested }),
    Status: () => host.Status({ runId }),
    Cancel: (reason) => host.Cancel({ runId, reason }),
    Signal: (name, payload) => host.Signal({ runId, name, payload })
  }
})
