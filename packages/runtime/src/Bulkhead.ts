/**
 * Bulkheads: at most `perTool` calls of one tool and at most `perTenant` tool calls of one tenant
 * in flight on this runner. A call waits up to `maxWait` for its permits, then fails with
 * `BulkheadFull`, so one slow tool or one busy tenant cannot take every fiber and connection.
 *
 * Configuration (`layerConfig`): `TOOL_BULKHEAD_PER_TOOL` (default 64),
 * `TOOL_BULKHEAD_PER_TENANT` (default 16), `TOOL_BULKHEAD_MAX_WAIT` (default "1 second").
 */
import { BulkheadFull } from "@tessera/domain/ToolError"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"

export interface Options {
  readonly perTool: number
  readonly perTenant: number
  readonly maxWait: Duration.DurationInput
}

export const defaults: Options = { perTool: 64, perTenant: 16, maxWait: Duration.seconds(1) }

export const make = (options: Options = defaults) =>
  Effect.sync(() => {
    const semaphores = new Map<string, Effect.Semaphore>()
    const semaphore = (key: string, limit: number) => {
      let found = semaphores.get(key)
      if (found === undefined) {
        found = Effect.unsafeMakeSemaphore(limit)
        semaphores.set(key, found)
      }
      return found
    }

    /**
     * Holds one permit of `key` around `effect`. A free permit is taken at once (no timer: the
     * common case costs a few operations); otherwise waiting for one is interruptible and bounded
     * by `maxWait`.
     */
    const withPermit = <A, E, R>(key: string, limit: number, effect: Effect.Effect<A, E, R>) => {
      const sem = semaphore(key, limit)
      const wait = Effect.uninterruptibleMask((restore) =>
        restore(sem.take(1)).pipe(
          Effect.timeoutFail({ duration: options.maxWait, onTimeout: () => new BulkheadFull({ key, limit }) }),
          Effect.zipRight(Effect.ensuring(restore(effect), sem.release(1)))
        )
      )
      return Effect.flatMap(
        sem.withPermitsIfAvailable(1)(effect),
        Option.match({ onNone: () => wait, onSome: Effect.succeed })
      )
    }

    /** Runs `effect` holding a permit of the tool's and of the tenant's bulkhead. */
    const run = <A, E, R>(
      tenantId: string,
      tool: string,
      effect: Effect.Effect<A, E, R>
    ): Effect.Effect<A, E | BulkheadFull, R> =>
      withPermit(`tool:${tool}`, options.perTool, withPermit(`tenant:${tenantId}`, options.perTenant, effect))

    return { run } as const
  })

export class Bulkheads extends Effect.Service<Bulkheads>()("@tessera/runtime/Bulkheads", {
  effect: make()
}) {}

export const layerWith = (options: Options): Layer.Layer<Bulkheads> =>
  Layer.effect(Bulkheads, Effect.map(make(options), (bulkheads) => Bulkheads.make(bulkheads)))

export const layer: Layer.Layer<Bulkheads> = Bulkheads.Default

/** `TOOL_BULKHEAD_PER_TOOL`, `TOOL_BULKHEAD_PER_TENANT`, `TOOL_BULKHEAD_MAX_WAIT`. */
export const layerConfig: Layer.Layer<Bulkheads> = Layer.unwrapEffect(
  Effect.map(
    Config.all({
      perTool: Config.integer("TOOL_BULKHEAD_PER_TOOL").pipe(Config.withDefault(defaults.perTool)),
      perTenant: Config.integer("TOOL_BULKHEAD_PER_TENANT").pipe(Config.withDefault(defaults.perTenant)),
      maxWait: Config.duration("TOOL_BULKHEAD_MAX_WAIT").pipe(Config.withDefault(Duration.seconds(1)))
    }),
    layerWith
  )
).pipe(Layer.orDie)
