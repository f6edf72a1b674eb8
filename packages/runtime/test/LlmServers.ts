/**
 * Real HTTP servers speaking the OpenAI chat-completions and Anthropic messages protocols, for
 * the gateway tests: each request is recorded and answered by the test's `respond`.
 */
import * as Effect from "effect/Effect"
import * as http from "node:http"

export interface Recorded {
  readonly path: string
  readonly body: Record<string, unknown>
  readonly headers: http.IncomingHttpHeaders
}

export type Reply =
  | { readonly status: number; readonly headers?: Record<string, string>; readonly body: string }
  /** Server-sent events, each `data:` line as given; `event` names them (Anthropic). */
  | { readonly sse: ReadonlyArray<{ readonly event?: string; readonly data: string }> }

export const serve = (respond: (request: Recorded, attempt: number) => Reply) =>
  Effect.acquireRelease(
    Effect.async<{ readonly server: http.Server; readonly url: string; readonly requests: Array<Recorded> }>((resume) => {
      const requests: Array<Recorded> = []
      const server = http.createServer((req, res) => {
        let raw = ""
        req.setEncoding("utf8")
        req.on("data", (part: string) => (raw += part))
        req.on("end", () => {
          const recorded: Recorded = { path: req.url ?? "", body: JSON.parse(raw === "" ? "{}" : raw), headers: req.headers }
          requests.push(recorded)
          const reply = respond(recorded, requests.length)
          if ("sse" in reply) {
            res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" })
            for (const event of reply.sse) res.write(`${event.event === undefined ? "" : `event: ${event.event}\n`}data: ${event.data}\n\n`)
            res.end()
            return
          }
          res.writeHead(reply.status, { "content-type": "application/json", ...reply.headers })
          res.end(reply.body)
        })
      })
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        const port = typeof address === "object" && address !== null ? address.port : 0
        resume(Effect.succeed({ server, url: `http://127.0.0.1:${port}`, requests }))
      })
    }),
    ({ server }) =>
      Effect.async<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  )

/** An OpenAI chat completion with `text` and usage. */
export const chatCompletion = (text: string, usage = { prompt_tokens: 100, completion_tokens: 20 }): Reply => ({
  status: 200,
  body: JSON.stringify({
    id: "chatcmpl-1",
    object: "chat.completion",
    created: 1_700_000_000,
    model: "gpt-4o-mini",
    choices: [{ index: 0, message: { role: "assistant", content: text, refusal: null }, logprobs: null, finish_reason: "stop" }],
    usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens }
  })
})

/** An OpenAI chat-completions stream of `pieces`, then usage, then `[DONE]`. */
export const chatStream = (pieces: ReadonlyArray<string>, usage = { prompt_tokens: 50, completion_tokens: 10 }): Reply => ({
  sse: [
    ...pieces.map((content, i) => ({
      data: JSON.stringify({
        id: "chatcmpl-2",
        object: "chat.completion.chunk",
        created: 1_700_000_000,
        model: "gpt-4o-mini",
        choices: [{ index: 0, delta: i === 0 ? { role: "assistant", content } : { content }, finish_reason: null }]
      })
    })),
    { data: JSON.stringify({ id: "chatcmpl-2", object: "chat.completion.chunk", created: 1_700_000_000, model: "gpt-4o-mini", choices: [], usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens } }) },
    { data: "[DONE]" }
  ]
})

const anthropicUsage = (input: number, output: number) => ({ input_tokens: input, output_tokens: output })

/** An Anthropic message with `text`. */
export const message = (text: string, input = 80, output = 15): Reply => ({
  status: 200,
  body: JSON.stringify({
    id: "msg_1",
    type: "message",
    role: "assistant",
    model: "claude-3-5-haiku-latest",
    content: [{ type: "text", text }],
    stop_reason: "end_turn",
    stop_sequence: null,
    usage: anthropicUsage(input, output)
  })
})

/** An Anthropic message stream of `pieces`. */
export const messageStream = (pieces: ReadonlyArray<string>, input = 40, output = 12): Reply => ({
  sse: [
    {
      event: "message_start",
      data: JSON.stringify({
        type: "message_start",
        message: { id: "msg_2", type: "message", role: "assistant", model: "claude-3-5-haiku-latest", content: [], stop_reason: null, stop_sequence: null, usage: anthropicUsage(input, 1) }
      })
    },
    { event: "content_block_start", data: JSON.stringify({ type: "content_block_start", index: 0, content_block: { type: "text", text: "" } }) },
    ...pieces.map((text) => ({ event: "content_block_delta", data: JSON.stringify({ type: "content_block_delta", index: 0, delta: { type: "text_delta", text } }) })),
    { event: "content_block_stop", data: JSON.stringify({ type: "content_block_stop", index: 0 }) },
    { event: "message_delta", data: JSON.stringify({ type: "message_delta", delta: { stop_reason: "end_turn", stop_sequence: null }, usage: { output_tokens: output } }) },
    { event: "message_stop", data: JSON.stringify({ type: "message_stop" }) }
  ]
})
