import * as NodeContext from "@effect/platform-node/NodeContext"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as KnowledgeEval from "@tessera/runtime/KnowledgeEval"
import * as DemoKnowledge from "../src/DemoKnowledge.js"

describe("DemoKnowledge", () => {
  it.effect("cuts the demo FAQ into one document per entry and the policies into one each, by id", () =>
    Effect.gen(function*() {
      const docs = yield* DemoKnowledge.documents
      const faq = docs.filter((d) => d.sourceKey.startsWith("faq-"))
      const policies = docs.filter((d) => d.sourceKey.startsWith("policy-"))
      assert.isAtLeast(faq.length, 100)
      assert.strictEqual(policies.length, 4)
      assert.strictEqual(new Set(docs.map((d) => d.sourceKey)).size, docs.length)
      const first = faq.find((d) => d.sourceKey === "faq-shipping-002")!
      assert.strictEqual(first.title, "How long does standard shipping take?")
      assert.deepStrictEqual(first.tags, ["shipping"])
      assert.match(first.content, /^## Shipping\n\n### How long does standard shipping take\?\n\nStandard shipping takes/)
      assert.notMatch(first.content, /<!--/)
      // Every id the retrieval question set expects is a document here.
      const questions = Fs.readFileSync(Path.resolve(import.meta.dirname, "../../../test/fixtures/retrieval/questions.jsonl"), "utf8")
      const expected = (yield* KnowledgeEval.parseJsonl(questions)).flatMap((q) => q.expected)
      const keys = new Set(docs.map((d) => d.sourceKey))
      assert.deepStrictEqual(expected.filter((id) => !keys.has(id)), [])
    }).pipe(Effect.provide(NodeContext.layer)))
})
