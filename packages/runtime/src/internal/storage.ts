import type { AlreadyProcessingMessage, MailboxFull, PersistenceError } from "@effect/cluster/ClusterError"
import type { SqlError } from "@effect/sql/SqlError"
import { StorageError } from "@tessera/domain/Errors"
import * as Effect from "effect/Effect"

/**
 * Maps a foreign storage failure to the domain's StorageError at the boundary, naming the
 * operation: `Effect.catchTag("SqlError", storageError("session.send"))`.
 */
export const storageError = (operation: string) => (error: SqlError): Effect.Effect<never, StorageError> =>
  Effect.zipRight(
    Effect.logWarning(`${operation} failed`, error),
    Effect.fail(new StorageError({ operation, reason: error.message }))
  )

/**
 * The cluster's delivery failures of an entity call, as a StorageError naming the operation:
 * `Effect.catchTags(clusterErrors("tenant.admit"))`.
 */
export const clusterErrors = (operation: string) => {
  const fail = (error: MailboxFull | AlreadyProcessingMessage | PersistenceError) =>
    Effect.fail(new StorageError({ operation, reason: error.message }))
  return { MailboxFull: fail, AlreadyProcessingMessage: fail, PersistenceError: fail }
}
