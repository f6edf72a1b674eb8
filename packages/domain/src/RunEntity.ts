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

export const Status = Rpc.make("Status", {
  success: Run,
  error: Schema.Union(RunNotFound, StorageError)
})

export const Cancel = Rpc.make("Cancel", {
  payload: { reason: Schema.String.pipe(Schema.maxLength(500)) },
  success: Run,
  error: Schema.Union(RunNotFound, StorageError)
})

export const RunEntity = Entity.make("Run", [Start, Status, Cancel])
