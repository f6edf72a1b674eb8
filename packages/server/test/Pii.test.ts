import { assert, describe, it } from "@effect/vitest"
import * as Realtime from "@tessera/domain/Realtime"
import { RunId } from "@tessera/domain/Ids"
import * as Effect from "effect/Effect"
import * as HashMap from "effect/HashMap"
import * as Logger from "effect/Logger"
import { layerLogger, luhn, redact, redactText } from "../src/Pii.js"
import { makeSendQueue } from "../src/Realtime.js"

describe("Pii", () => {
  it("redacts e-mails, Luhn-valid card numbers and phone numbers, and nothing else", () => {
    assert.isTrue(luhn("4111111111111111"))
    assert.isFalse(luhn("4111111111111112"))
    assert.strictEqual(
      redactText("mail ann.lee+x@example.co.uk, card 4111 1111 1111 1111, call +1 (415) 555-0100, order 12345"),
      "mail [email], card [card], call [phone], order 12345"
    )
    // Digits inside an identifier are not a phone number.
    assert.strictEqual(redactText("owner key_18da384886194a33, run_4111111111111111x"), "owner key_18da384886194a33, run_4111111111111111x")
    // 16 digits failing Luhn are not a card; too long for a phone either.
    assert.strictEqual(redactText("ref 4111111111111112"), "ref 4111111111111112")
    assert.deepStrictEqual(redact({ who: "bob@example.com", n: 3, list: ["5555 5555 5555 4444"] }), {
      who: "[email]",
      n: 3,
      list: ["[card]"]
    })
  })
})

describe("redacting logger", () => {
  it.effect("log lines carry no e-mail, card or phone number", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const capture = Logger.make(({ annotations, message }) => {
        lines.push(JSON.stringify({ message, annotations: Object.fromEntries(HashMap.toEntries(annotations)) }))
      })
      yield* Effect.logInfo("refund for ann@example.com to 4111 1111 1111 1111").pipe(
        Effect.annotateLogs("phone", "+44 20 7946 0958"),
        Effect.provide(layerLogger),
        Effect.provide(Logger.replace(Logger.defaultLogger, capture))
      )
      assert.strictEqual(lines.length, 1)
      assert.notInclude(lines[0]!, "ann@example.com")
      assert.notInclude(lines[0]!, "4111")
      assert.notInclude(lines[0]!, "7946")
      assert.include(lines[0]!, "[email]")
      assert.include(lines[0]!, "[card]")
      assert.include(lines[0]!, "[phone]")
    }))
})

describe("send queue", () => {
  const run = RunId.make("run_1")
  const step = (i: number) => new Realtime.StepFrame({ id: `i_${i}`, run_id: run, event: "tool.call.succeeded", detail: i })
  const token = (delta: string) => new Realtime.TokenFrame({ id: `t_${delta}`, run_id: run, step_id: "answer", seq: 1, delta })

  it("past its bound it drops the oldest intermediate frame, coalesces tokens and keeps every final", () => {
    const queue = makeSendQueue(3)
    assert.strictEqual(queue.push(step(1)) + queue.push(step(2)) + queue.push(step(3)), 0)
    assert.strictEqual(queue.push(step(4)), 1)
    assert.strictEqual(queue.size(), 3)
    assert.strictEqual(queue.push(token("a")), 1)
    assert.strictEqual(queue.push(token("b")), 1)
    const final = new Realtime.PongFrame({ id: "p", ref: "x" })
    assert.strictEqual(queue.push(final), 0)
    assert.isTrue(queue.overBound())
    const out = [queue.shift(), queue.shift(), queue.shift(), queue.shift()]
    assert.deepStrictEqual(out.map((f) => f?.id), ["i_3", "i_4", "t_a", "p"])
    assert.strictEqual(out[2]?.type === "token" ? out[2].delta : "", "ab")
    assert.isUndefined(queue.shift())
  })
})
