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
