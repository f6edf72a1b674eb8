import { assert, describe, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as Expression from "../src/Expression.js"

const scope = {
  input: { message: "Where is order 1234?", items: [{ sku: "mug", quantity: 2 }], empty: [] },
  steps: { search: { score: 0.83, hits: [{ text: "Orders ship in 2 days" }] }, "a-b": { x: 1 } },
  context: { plan: "pro" },
  run: { id: "r1" }
}

const value = (source: string): unknown => Expression.evaluate(Either.getOrThrow(Expression.parse(source)), scope)

describe("Expression", () => {
  it("evaluates paths, operators and functions over the run scope", () => {
    assert.strictEqual(value("steps.search.score >= 0.8"), true)
    assert.strictEqual(value("steps.search.score >= 0.9 || context.plan == 'pro'"), true)
    assert.strictEqual(value("input.items[0].quantity * 3 + 1"), 7)
    assert.strictEqual(value("steps[\"a-b\"].x"), 1)
    assert.strictEqual(value("len(input.items) == 1 && !input.empty"), true)
    assert.strictEqual(value("contains(input.message, 'ORDER')"), true)
    assert.strictEqual(value("'pro' in ['free', 'pro']"), true)
    assert.strictEqual(value("default(input.missing, 'none')"), "none")
    assert.strictEqual(value("steps.search.score > 0.5 ? 'confident' : 'unsure'"), "confident")
    assert.strictEqual(value("round(steps.search.score * 100)"), 83)
    assert.strictEqual(value("input.nothing.deeper.still"), undefined)
    assert.strictEqual(value("input.message < 3"), false)
  })

  it("reads only own data: prototypes and host objects are out of reach", () => {
    for (const source of [
      "input.constructor",
      "input.__proto__",
      "input.message.constructor",
      "input.toString",
      "input.items.constructor",
      "steps[\"__proto__\"]",
      "input.message.length"
    ]) {
      assert.strictEqual(value(source), undefined, source)
    }
    assert.strictEqual(value("input.items.length"), 1)
    assert.strictEqual(value("input.items[-1].sku"), "mug")
  })

  it("never runs code found in the scope: getters and functions read as undefined", () => {
    let ran = 0
    const trap = {
      input: {
        get secret() {
          ran++
          return "leaked"
        },
        fn: () => {
          ran++
          return "called"
        },
        list: [1]
      },
      steps: {},
      context: {},
      run: {}
    }
    Object.defineProperty(trap.input.list, "0", {
      get: () => {
        ran++
        return 2
      }
    })
    const evaluate = (source: string) => Expression.evaluate(Either.getOrThrow(Expression.parse(source)), trap)
    for (const source of ["input.secret", "input.fn", "input[\"secret\"]", "input.list[0]", "len(input.secret)", "input.secret == 'leaked'"]) {
      assert.notStrictEqual(evaluate(source), "leaked", source)
      assert.notStrictEqual(evaluate(source), 2, source)
    }
    assert.strictEqual(evaluate("input.fn"), undefined)
    assert.strictEqual(Either.isLeft(Expression.parse("input.fn()")), true, "no call syntax on paths")
    assert.strictEqual(ran, 0)
  })

  it("refuses names and syntax outside the language, with the offset", () => {
    const error = (source: string) => Either.getLeft(Expression.parse(source)).pipe((o) => o._tag === "Some" ? o.value : undefined)
    assert.deepStrictEqual({ ...error("process.exit(1)") }, {
      _tag: "ExpressionError",
      message: "unknown name \"process\": paths start with input, steps, context, run",
      offset: 0
    })
    assert.strictEqual(
      error("eval('1')")?.message,
      "unknown function \"eval\" (functions: len, lower, upper, trim, contains, exists, default, number, string, round, min, max, join, first)"
    )
    assert.strictEqual(error("steps.search.score >= ")?.message, "unexpected end of expression")
    assert.strictEqual(error("steps.search.score >= ")?.offset, 22)
    assert.strictEqual(error("input.a = 1")?.message, "unexpected character \"=\"")
    assert.strictEqual(error("len(1, 2)")?.message, "len() takes 1 argument, got 2")
    assert.strictEqual(error("input.a input.b")?.message, "unexpected text after the expression")
  })

  it("renders templates; one hole keeps its type", () => {
    const t = (text: string) => Either.getOrThrow(Expression.parseTemplate(text))
    assert.strictEqual(Expression.render(t("Hi {{ context.plan }}: {{ steps.search.score }}"), scope), "Hi pro: 0.83")
    assert.strictEqual(Expression.render(t("{{ input.missing }}|{{ input.items[0] }}"), scope), "|{\"sku\":\"mug\",\"quantity\":2}")
    assert.deepStrictEqual(Expression.renderValue(t("{{ input.items }}"), scope), scope.input.items)
    assert.strictEqual(Expression.renderValue(t("plain text"), scope), "plain text")
    const broken = Either.getLeft(Expression.parseTemplate("Best: {{ steps.search.hits[0].text "))
    assert.deepStrictEqual(broken._tag === "Some" ? broken.value.offset : -1, 6)
    // Paths, with where each starts in the text, for static checks.
    const read = Expression.paths(t("{{ input.a }} and {{ len(steps.search.hits) > 0 ? steps.x : run.id }}"))
    assert.deepStrictEqual(read.map((p) => [p.root, p.offset]), [["input", 3], ["steps", 25], ["steps", 50], ["run", 60]])
  })
})
