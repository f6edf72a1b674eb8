/** A WebSocket client for the realtime tests: frames in arrival order, a consumer that can stop reading. */
import * as Effect from "effect/Effect"
import WebSocket from "ws"

export interface Frame {
  readonly type: string
  readonly id: string
  readonly [key: string]: unknown
}

export interface Client {
  readonly frames: Array<Frame>
  readonly send: (frame: Record<string, unknown> | string) => Effect.Effect<void>
  /** The first frame (from the start) matching `predicate`, waiting for it. */
  readonly waitFor: (predicate: (frame: Frame) => boolean) => Effect.Effect<Frame>
  /** Stops reading from the socket (the server's writes pile up in TCP buffers), and starts again. */
  readonly pause: Effect.Effect<void>
  readonly resume: Effect.Effect<void>
  readonly closed: Effect.Effect<number>
  readonly close: Effect.Effect<void>
}

/** Connects (closing with the scope); fails with the HTTP status when the upgrade is refused. */
export const connect = (url: string, headers: Record<string, string> = {}) =>
  Effect.acquireRelease(
    Effect.async<Client, number>((resume) => {
      const ws = new WebSocket(url, { headers })
      const frames: Array<Frame> = []
      const waiters = new Set<() => void>()
      let closeCode: number | undefined
      const closeWaiters = new Set<(code: number) => void>()
      ws.on("message", (data: Buffer) => {
        frames.push(JSON.parse(data.toString("utf8")))
        for (const wake of waiters) wake()
      })
      ws.on("close", (code: number) => {
        closeCode = code
        for (const wake of closeWaiters) wake(code)
      })
      ws.on("unexpected-response", (_request: unknown, response: { statusCode: number }) => resume(Effect.fail(response.statusCode)))
      ws.on("error", () => undefined)
      ws.on("open", () =>
        resume(Effect.succeed({
          frames,
          send: (frame) => Effect.sync(() => ws.send(typeof frame === "string" ? frame : JSON.stringify(frame))),
          waitFor: (predicate) =>
            Effect.async<Frame>((done) => {
              const check = () => {
                const found = frames.find(predicate)
                if (found !== undefined) {
                  waiters.delete(check)
                  done(Effect.succeed(found))
                }
              }
              waiters.add(check)
              check()
              return Effect.sync(() => waiters.delete(check))
            }),
          pause: Effect.sync(() => ws.pause()),
          resume: Effect.sync(() => ws.resume()),
          closed: Effect.async<number>((done) => {
            if (closeCode !== undefined) return done(Effect.succeed(closeCode))
            closeWaiters.add((code) => done(Effect.succeed(code)))
          }),
          close: Effect.sync(() => ws.close())
        }))
      )
    }),
    (client) => client.close
  )
