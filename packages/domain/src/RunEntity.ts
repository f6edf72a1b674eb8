/**
 * The Run actor (entity id = `<tenant>/<run>`): one execution of one workflow, event-sourced on
 * its journal in Postgres. `Start` is idempotent: it replays the journal and goes on from the
 * first unfinished step, so the recovery scan may send it to any run at any time.
 */
import { Entity } from "@effect/cluster"
import { Rpc } from "@effect/rpc"
import * as Schema from "effect/Schema"
import { RunNotFound, StorageError } from "./Errors.js"
import { RunId, TenantId } from "./Ids.js"
import { Run } from "./Run.js"

export const entityId = (tenantId: TenantId, runId: RunId): string => `${tenantId}/${runId}`

/** Sets the run going on its entity and answers at once; `Status` follows it. */
export const Start = Rpc.make("Start", {
  error: Schema.Union(RunNotFound, StorageError)
})

/**
 * Internal: the entity sends this to itself from `Start` and executes the run inside it, so the
 * run holds its activation (an entity with a message in hand is not passivated) without the
 * caller waiting. Callers use `Start`.
 */
export const Execute = Rpc.make("Execute")

export const Status = Rpc.make("Status", {
  success: Run,
  error: Schema.Union(RunNotFound, StorageError)
})

export const Cancel = Rpc.make("Cancel", {
  payload: { reason: Schema.String.pipe(Schema.maxLength(500)) },
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
    name: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(200)),
    payload: Schema.Unknown
  },
  error: Schema.Union(RunNotFound, StorageError)
})

export const RunEntity = Entity.make("Run", [Start, Execute, Status, Cancel, Signal])
