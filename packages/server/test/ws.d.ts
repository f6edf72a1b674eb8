/** The slice of the `ws` client (a dependency of @effect/platform-node) the realtime tests use. */
declare module "ws" {
  import type { EventEmitter } from "node:events"
  export default class WebSocket extends EventEmitter {
    constructor(url: string, options?: { readonly headers?: Record<string, string> })
    readonly readyState: number
    send(data: string): void
    close(code?: number, reason?: string): void
    pause(): void
    resume(): void
  }
}
