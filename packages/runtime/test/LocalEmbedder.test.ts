import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { Embedder } from "../src/Embedder.js"
import * as LocalEmbedder from "../src/LocalEmbedder.js"

const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, x, i) => s + x * b[i]!, 0)
const norm = (v: Float32Array) => Math.sqrt(dot(v, v))

describe("LocalEmbedder", () => {
  it.effect("is deterministic and unit-norm, with model local/hash-<dim>", () =>
    Effect.gen(function*() {
      const e = yield* Embedder
      assert.strictEqual(e.model, "local/hash-384")
      assert.strictEqual(e.dimension, 384)
      const [a, b] = yield* e.embed(["Refunds take 5 to 7 business days.", "Refunds take 5 to 7 business days."])
      assert.strictEqual(a!.length, 384)
      assert.deepStrictEqual(Array.from(a!), Array.from(b!))
      // a fresh instance gives the same vector: nothing depends on state or randomness
      const [c] = yield* LocalEmbedder.make().embed(["Refunds take 5 to 7 business days."])
      assert.deepStrictEqual(Array.from(a!), Array.from(c!))
      assert.approximately(norm(a!), 1, 1e-6)
    }).pipe(Effect.provide(LocalEmbedder.layer)))

  it.effect("ranks texts sharing stems and n-grams above unrelated ones", () =>
    Effect.gen(function*() {
      const e = LocalEmbedder.make()
      const [q, para, other, q2, para2] = yield* e.embed([
        "refund my purchase",
        "Refunds for purchases",
        "The weather in Paris is sunny today",
        "How long does shipping take?",
        "shipping times for delivered orders"
      ])
      assert.isAbove(dot(q!, para!), dot(q!, other!) + 0.3)
      assert.isAbove(dot(q2!, para2!), dot(q2!, other!) + 0.1)
      assert.isAbove(dot(q2!, para2!), dot(q2!, para!))
    }))

  it.effect("stems simply and deterministically", () =>
    Effect.sync(() => {
      const pairs: ReadonlyArray<readonly [string, string]> = [
        ["refunds", "refund"], ["purchases", "purchas"], ["purchase", "purchas"], ["shipping", "ship"],
        ["shipped", "ship"], ["policies", "policy"], ["boxes", "box"], ["quickly", "quick"], ["analysis", "analysis"]
      ]
      for (const [word, stem] of pairs) assert.strictEqual(LocalEmbedder.stem(word), stem, word)
    }))

  it.effect("a text without letters or digits is the zero vector; stop words alone still embed", () =>
    Effect.gen(function*() {
      const e = LocalEmbedder.make({ dimension: 64 })
      assert.strictEqual(e.model, "local/hash-64")
      const [empty, punct, stop] = yield* e.embed(["", "?! ...", "what is it"])
      assert.strictEqual(empty!.length, 64)
      assert.isTrue(empty!.every((x) => x === 0))
      assert.isTrue(punct!.every((x) => x === 0))
      assert.approximately(norm(stop!), 1, 1e-6)
      assert.deepStrictEqual(yield* e.embed([]), [])
    }))

  it.effect("ignores case and whitespace differences", () =>
    Effect.gen(function*() {
      const [a, b] = yield* LocalEmbedder.make().embed(["Shipping  Policy", "shipping policy\n"])
      assert.deepStrictEqual(Array.from(a!), Array.from(b!))
    }))
})
