import { assert, describe, it } from "@effect/vitest"
import type { Chunk } from "@tessera/domain/Knowledge"
import { chunk, normalizeWhitespace, toPlainText } from "../src/Chunker.js"

type Input = Parameters<typeof chunk>[0]

/**
 * The invariants every chunking keeps: positions 0..n-1, no chunk over the limit, and each
 * chunk's text is exactly `toPlainText(...).slice(start, end)` of a whitespace-normalised plain text.
 */
const check = (input: Input, maxChars = 1200): ReadonlyArray<Chunk> => {
  const chunks = chunk(input, { maxChars })
  const plain = toPlainText(input.format, input.content)
  assertNormalised(plain)
  chunks.forEach((c, i) => {
    assert.strictEqual(c.position, i)
    assert.isAtMost(c.text.length, maxChars)
    assert.isAbove(c.text.length, 0)
    assert.strictEqual(plain.slice(c.start, c.end), c.text)
    assert.strictEqual(c.text, c.text.trim())
  })
  return chunks
}

/** Whitespace-normalised: no leading/trailing whitespace on any line or overall, single spaces, single blank lines. */
const assertNormalised = (plain: string) => {
  assert.strictEqual(plain, plain.trim())
  assert.notMatch(plain, /[^\S\n]{2,}|[ \t\u00a0]\n|\n[ \t\u00a0]|\n{3,}|[\t\r\u00a0]/)
}

const find = (chunks: ReadonlyArray<Chunk>, needle: string): Chunk => {
  const found = chunks.find((c) => c.text.includes(needle))
  assert.isDefined(found, `no chunk contains ${JSON.stringify(needle)}`)
  return found!
}

describe("Chunker", () => {
  it("keeps headings in headingPath, popping siblings and parents", () => {
    const content = [
      "# Returns",
      "",
      "Items can be returned within 30 days.",
      "",
      "## Refund timing",
      "",
      "Refunds are issued to the original payment method.",
      "",
      "### Card refunds",
      "",
      "Card refunds show up after a few days.",
      "",
      "## Exchanges",
      "",
      "Exchanges are free.",
      "",
      "# Shipping",
      "",
      "We ship worldwide."
    ].join("\n")
    const chunks = check({ format: "markdown", content })
    assert.deepStrictEqual(chunks.map((c) => [c.headingPath, c.text]), [
      [["Returns"], "Items can be returned within 30 days."],
      [["Returns", "Refund timing"], "Refunds are issued to the original payment method."],
      [["Returns", "Refund timing", "Card refunds"], "Card refunds show up after a few days."],
      [["Returns", "Exchanges"], "Exchanges are free."],
      [["Shipping"], "We ship worldwide."]
    ])
    assert.deepStrictEqual(chunks.map((c) => c.kind), ["paragraph", "paragraph", "paragraph", "paragraph", "paragraph"])
  })

  it("keeps a FAQ question with its answer (bold, Q:, and heading questions)", () => {
    const content = [
      "# FAQ",
      "",
      "**How long do refunds take?**",
      "Refunds take 5 to 7 *business* days after we receive the item.",
      "",
      "Q: Can I return a gift?",
      "A: Yes, with the gift receipt.",
      "",
      "## Do you ship abroad?",
      "",
      "Yes, to 40 countries.",
      "",
      "- Europe",
      "- Asia"
    ].join("\n")
    const chunks = check({ format: "markdown", content })
    assert.deepStrictEqual(chunks.map((c) => c.kind), ["faq", "faq", "faq"])
    assert.strictEqual(chunks[0]!.text, "How long do refunds take?\n\nRefunds take 5 to 7 business days after we receive the item.")
    assert.strictEqual(chunks[1]!.text, "Q: Can I return a gift?\n\nA: Yes, with the gift receipt.")
    assert.strictEqual(chunks[2]!.text, "Do you ship abroad?\n\nYes, to 40 countries.\n\n- Europe\n- Asia")
    for (const c of chunks) assert.deepStrictEqual(c.headingPath, ["FAQ"])

    // still one chunk when the limit is just big enough for the pair, even though paragraphs
    // around it are cut apart
    const tight = check({ format: "text", content: `Intro text here.\n\nQ: Is it safe?\nA: ${"Very safe indeed. ".repeat(3).trim()}\n\nOutro.` }, 80)
    assert.strictEqual(find(tight, "Is it safe?").text, "Q: Is it safe?\n\nA: Very safe indeed. Very safe indeed. Very safe indeed.")
    assert.strictEqual(find(tight, "Is it safe?").kind, "faq")
  })

  it("splits an answer over the limit, keeping the question on the first piece and in the path of the rest", () => {
    const answer = Array.from({ length: 30 }, (_, i) => `Step ${i} of the return process is explained here.`).join(" ")
    const chunks = check({ format: "markdown", content: `# Help\n\n**How do I return an item?**\n\n${answer}` }, 300)
    assert.isAbove(chunks.length, 2)
    assert.isTrue(chunks.every((c) => c.kind === "faq"))
    assert.isTrue(chunks[0]!.text.startsWith("How do I return an item?\n\nStep 0"))
    assert.deepStrictEqual(chunks[0]!.headingPath, ["Help"])
    for (const c of chunks.slice(1)) assert.deepStrictEqual(c.headingPath, ["Help", "How do I return an item?"])
    assert.isTrue(chunks[chunks.length - 1]!.text.endsWith("Step 29 of the return process is explained here."))
  })

  it("keeps a list whole when it fits and splits it between items otherwise", () => {
    const items = Array.from({ length: 12 }, (_, i) => `- Option ${i}: a description of option number ${i}`)
    const content = `## Plans\n\nChoose one:\n\n${items.join("\n")}\n`
    const whole = check({ format: "markdown", content })
    assert.strictEqual(whole.length, 1)
    assert.strictEqual(whole[0]!.text, `Choose one:\n\n${items.join("\n")}`)
    assert.strictEqual(whole[0]!.kind, "section")

    const listOnly = check({ format: "markdown", content: items.join("\n") })
    assert.deepStrictEqual(listOnly.map((c) => [c.kind, c.text]), [["list", items.join("\n")]])

    const split = check({ format: "markdown", content }, 200)
    const lists = split.filter((c) => c.kind === "list")
    assert.isAbove(lists.length, 1)
    // every piece is whole items: the items, re-joined, are the list again
    assert.deepStrictEqual(lists.flatMap((c) => c.text.split("\n")), items)
    for (const c of lists) assert.deepStrictEqual(c.headingPath, ["Plans"])
  })

  it("respects the limit on a long paragraph, at sentence ends, with overlap between pieces", () => {
    const sentences = Array.from({ length: 40 }, (_, i) => `Sentence ${i} talks about refunds and shipping in detail.`)
    const content = sentences.join(" ")
    const maxChars = 300
    const overlapChars = 60
    const chunks = chunk({ format: "text", content }, { maxChars, overlapChars })
    const plain = toPlainText("text", content)
    assert.strictEqual(plain, content)
    assert.isAbove(chunks.length, 5)
    assert.strictEqual(chunks[0]!.start, 0)
    assert.strictEqual(chunks[chunks.length - 1]!.end, plain.length)
    for (const c of chunks) {
      assert.isAtMost(c.text.length, maxChars)
      assert.strictEqual(c.kind, "paragraph")
      assert.isTrue(c.text.endsWith("."), "pieces end at a sentence end")
    }
    for (let i = 1; i < chunks.length; i++) {
      const prev = chunks[i - 1]!
      const next = chunks[i]!
      // overlap present: the next piece starts inside the previous one, by at most overlapChars
      assert.isBelow(next.start, prev.end)
      assert.isAtMost(prev.end - next.start, overlapChars)
      assert.isTrue(prev.text.endsWith(plain.slice(next.start, prev.end)))
      assert.isAbove(next.end, prev.end)
    }

    const noOverlap = chunk({ format: "text", content }, { maxChars, overlapChars: 0 })
    for (let i = 1; i < noOverlap.length; i++) assert.isAtLeast(noOverlap[i]!.start, noOverlap[i - 1]!.end)

    // a single sentence over the limit is cut between words; a giant word is cut hard
    const words = check({ format: "text", content: `${"word ".repeat(200)}${"x".repeat(500)}` }, 100)
    assert.isAbove(words.length, 10)
  })

  it("maps HTML: drops scripts, styles and comments, maps h1-h6 and li, decodes entities", () => {
    const content = `<!doctype html><html><head><title>Shop</title><style>p { color: red }</style></head>
      <body><script>document.write("<p>evil</p>")</script>
      <h1>Help &amp; Support</h1>
      <p>Hello&nbsp;there,   <b>friend</b> &lt;3 &#8364;5 &#x41;&eacute;</p>
      <!-- a comment <p>hidden</p> -->
      <h2>Delivery</h2>
      <ul><li>Standard &ndash; 5 days</li><li><a href="/x?a=1&amp;b=2">Express</a> — 1 day</li></ul>
      <h3>Is it free?</h3><p>Yes, over <em>50 €</em>.</p>
      <dl><dt>Can I pick up?</dt><dd>Yes.</dd></dl>
      <p onclick="alert('x>y')">Done</p>
      </body></html>`
    const plain = toPlainText("html", content)
    assert.strictEqual(
      plain,
      "Help & Support\n\nHello there, friend <3 €5 Aé\n\nDelivery\n\n- Standard – 5 days\n- Express — 1 day\n\nIs it free?\n\nYes, over 50 €.\n\nCan I pick up?\n\nYes.\n\nDone"
    )
    const chunks = check({ format: "html", content })
    assert.deepStrictEqual(chunks.map((c) => [c.kind, c.headingPath, c.text]), [
      ["paragraph", ["Help & Support"], "Hello there, friend <3 €5 Aé"],
      ["list", ["Help & Support", "Delivery"], "- Standard – 5 days\n- Express — 1 day"],
      ["faq", ["Help & Support", "Delivery"], "Is it free?\n\nYes, over 50 €."],
      ["faq", ["Help & Support", "Delivery"], "Can I pick up?\n\nYes."],
      ["paragraph", ["Help & Support", "Delivery"], "Done"]
    ])
    assert.strictEqual(toPlainText("html", "<ol><li>one</li><li>two</li></ol>"), "1. one\n2. two")
  })

  it("offsets slice back to the chunk text; the plain text is the input modulo whitespace normalisation", () => {
    const content = "  First   paragraph\twith\r\nsoft breaks.  \r\n\r\n\r\n\n Second\u00a0paragraph.\n\n- a  list\n- of items\n\nQ: Why?\nA: Because. "
    const chunks = check({ format: "text", content }, 40)
    const plain = toPlainText("text", content)
    assert.strictEqual(plain, "First paragraph with soft breaks.\n\nSecond paragraph.\n\n- a list\n- of items\n\nQ: Why?\n\nA: Because.")
    // for plain text, chunking only normalises whitespace: collapse every run of whitespace to one
    // space and trim, and input and plain text are the same string
    assert.strictEqual(normalizeWhitespace(plain), normalizeWhitespace(content))
    for (const c of chunks) {
      assert.strictEqual(plain.slice(c.start, c.end), c.text)
      assert.include(normalizeWhitespace(content), normalizeWhitespace(c.text))
    }
    // markdown: markup is dropped, offsets still point into the plain text
    const md = check({ format: "markdown", content: "# T\n\nSome **bold** and `code` and [a link](https://x.y).\n\n```\nconst x = 1\n```" })
    assert.strictEqual(md[0]!.text, "Some bold and code and a link.\n\nconst x = 1")
  })

  it("returns [] for empty input", () => {
    assert.deepStrictEqual(chunk({ format: "text", content: "" }), [])
    assert.deepStrictEqual(chunk({ format: "markdown", content: "  \n\n \t" }), [])
    assert.deepStrictEqual(chunk({ format: "markdown", content: "# Only a heading\n\n## And another" }), [])
    assert.deepStrictEqual(chunk({ format: "html", content: "<script>x()</script><p> </p>" }), [])
    assert.strictEqual(toPlainText("html", ""), "")
  })
})
