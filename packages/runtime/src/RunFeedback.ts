/**
 * A user's rating of a run, in `run_feedback` (one row per run, tenant-owned): a second rating
 * replaces the first. Each write leaves the row pending for the router, which applies it to the
 * run's decisions at its next flush on whichever node (see Router). Another tenant's run, like a
 * missing one, is `RunNotFound`: row-level security hides its `agent_runs` row.
 */
import { RunNotFound, StorageError } from "@tessera/domain/Errors"
import type { RunId } from "@tessera/domain/Ids"
import { type FeedbackRequest, RunFeedback } from "@tessera/domain/RunFeedback"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { Database } from "./Database.js"

interface FeedbackRow {
  readonly run_id: string
  readonly rating: number
  readonly comment: string | null
  readonly updated_at: Date
}

const decode = Schema.decodeUnknown(RunFeedback)

/** Stores (or replaces) the rating of the tenant's run. */
export const save = (tenantId: string, runId: RunId, request: FeedbackRequest): Effect.Effect<RunFeedback, RunNotFound | StorageError, Database> =>
  Effect.gen(function*() {
    const db = yield* Database
    const rows = yield* db.tenant(tenantId)(db.sql<FeedbackRow>`
      INSERT INTO run_feedback (tenant_id, run_id, rating, comment)
      SELECT ${tenantId}, id, ${request.rating}, ${request.comment ?? null} FROM agent_runs WHERE tenant_id = ${tenantId} AND id = ${runId}
      ON CONFLICT (tenant_id, run_id)
      DO UPDATE SET rating = EXCLUDED.rating, comment = EXCLUDED.comment, pending = true, updated_at = now()
      RETURNING run_id, rating, comment, updated_at`).pipe(
      Effect.mapError((e) => new StorageError({ operation: "save run feedback", reason: e.message }))
    )
    const row = rows[0]
    if (row === undefined) return yield* new RunNotFound({ runId })
    return yield* decode({ runId: row.run_id, rating: row.rating, comment: row.comment, updatedAt: row.updated_at.toISOString() }).pipe(
      Effect.mapError((e) => new StorageError({ operation: "decode run feedback", reason: e.message }))
    )
  })
