/**
 * Structure-aware chunking of a document into `Chunk`s (pure, no I/O).
 *
 * Every format is first parsed into blocks (headings, paragraphs, lists, FAQ questions) and
 * rendered to a canonical plain text (`toPlainText`); chunks are contiguous slices of that text,
 * so `plain.slice(chunk.start, chunk.end) === chunk.text` holds exactly for every chunk.
 *
 * The plain text is whitespace-normalised:
 * - line endings are `\n`; no line has leading or trailing whitespace; no line holds two
 *   consecutive whitespace characters (every run of spaces, tabs, NBSPs … is one space);
 * - a paragraph's soft line breaks become single spaces (code blocks keep their lines);
 * - a list is one block with one item per line (`- item`, `1. item`);
 * - blocks are separated by exactly one blank line (`\n\n`); no leading or trailing newline.
 *
 * Markdown inline markup (emphasis, code spans, links, images) is reduced to its text; HTML
 * tags, comments, scripts and styles are removed and common entities decoded.
 */
import { Chunk } from "@tessera/domain/Knowledge"

export type Format = "text" | "markdown" | "html"

export interface ChunkOptions {
  /** No chunk is longer than this (characters). Default 1200. */
  readonly maxChars?: number
  /** Characters of the previous piece repeated at the start of the next when a block is split. Default 150. */
  readonly overlapChars?: number
}

export const defaultMaxChars = 1200
export const defaultOverlapChars = 150

type ChunkKind = "section" | "faq" | "list" | "paragraph"

// ---------------------------------------------------------------------------------------------
// Blocks
// ---------------------------------------------------------------------------------------------

type Block =
  | { readonly type: "heading"; readonly level: number; readonly text: string }
  | { readonly type: "question"; readonly text: string }
  | { readonly type: "paragraph"; readonly text: string }
  | { readonly type: "code"; readonly lines: ReadonlyArray<string> }
  | { readonly type: "list"; readonly items: ReadonlyArray<string> }

/** One run of whitespace becomes one space; the ends are trimmed. */
export const normalizeWhitespace = (s: string): string => s.replace(/\s+/g, " ").trim()

const isQuestionText = (s: string): boolean => /\?\s*$/.test(s)

/** `Q: …?` / `Question: …?` */
const qPrefix = /^(?:q|question)\s*[:.)-]\s*\S/i

// ---------------------------------------------------------------------------------------------
// Markdown (and plain text, which is parsed with markdown syntax switched off)
// ---------------------------------------------------------------------------------------------

const stripInline = (s: string): string =>
  s
    // images, then links: keep the visible text
    .replace(/!\[([^\]]{0,500})\]\([^)]{0,2000}\)/g, "$1")
    .replace(/\[([^\]]{1,500})\]\([^)]{0,2000}\)/g, "$1")
    .replace(/\[([^\]]{1,500})\]\[[^\]]{0,500}\]/g, "$1")
    // autolinks <https://…>
    .replace(/<((?:https?|mailto):[^>\s]+)>/g, "$1")
    // code spans
    .replace(/`+([^`]{1,1000}?)`+/g, "$1")
    // strong / emphasis / strike (only when the markers hug non-space text)
    // (spans are bounded so that unmatched markers cannot make this quadratic)
    .replace(/(\*\*|__)(?=\S)([^\n]{0,500}?\S)\1/g, "$2")
    .replace(/(^|[^\w*])\*(?=\S)([^*\n]{0,500}?\S)\*(?=[^\w*]|$)/g, "$1$2")
    .replace(/(^|[^\w_])_(?=\S)([^_\n]{0,500}?\S)_(?=[^\w_]|$)/g, "$1$2")
    .replace(/~~(?=\S)([^\n]{0,500}?\S)~~/g, "$1")
    // simple inline HTML tags sometimes found in markdown
    .replace(/<\/?(?:br|b|i|em|strong|span|sup|sub|u|code|kbd)\b[^>]*>/gi, " ")

const bulletRe = /^([-*+]|\d{1,9}[.)])\s+(.*)$/
const atxRe = /^(#{1,6})(?:\s+(.*?))?\s*$/
const fenceRe = /^(```+|~~~+)/
const hrRe = /^(?:(?:\*\s*){3,}|(?:-\s*){3,}|(?:_\s*){3,})$/
/** A bold line (`**…?**`), possibly followed on the same line by the answer. */
const boldQuestionRe = /^(?:\*\*|__)(.+?\?)(?:\*\*|__)\s*(.*)$/

const parseLines = (content: string, markdown: boolean): Array<Block> => {
  const lines = content.replace(/\r\n?/g, "\n").split("\n")
  const blocks: Array<Block> = []
  const inline = (s: string) => normalizeWhitespace(markdown ? stripInline(s) : s)
  let para: Array<string> = []
  let list: Array<{ marker: string; text: string }> = []

  const pushParagraph = (raw: ReadonlyArray<string>) => {
    if (raw.length === 0) return
    const first = raw[0]!.trim()
    const bold = markdown ? boldQuestionRe.exec(first) : null
    if (bold !== null) {
      const question = inline(bold[1]!)
      if (question.length > 0) blocks.push({ type: "question", text: question })
      const rest = inline([bold[2]!, ...raw.slice(1)].join(" "))
      if (rest.length > 0) blocks.push({ type: "paragraph", text: rest })
      return
    }
    if (qPrefix.test(first) && isQuestionText(first)) {
      blocks.push({ type: "question", text: inline(first) })
      const rest = inline(raw.slice(1).join(" "))
      if (rest.length > 0) blocks.push({ type: "paragraph", text: rest })
      return
    }
    const text = inline(raw.join(" "))
    if (text.length > 0) blocks.push({ type: "paragraph", text })
  }
  const flushParagraph = () => {
    pushParagraph(para)
    para = []
  }
  const flushList = () => {
    const items = list
      .map(({ marker, text }) => ({ marker, text: inline(text) }))
      .filter(({ text }) => text.length > 0)
      .map(({ marker, text }) => `${/^\d/.test(marker) ? marker : "-"} ${text}`)
    if (items.length > 0) blocks.push({ type: "list", items })
    list = []
  }

  let i = 0
  while (i < lines.length) {
    let line = lines[i]!.replace(/\t/g, "    ")
    if (markdown) {
      // blockquotes: drop the markers, keep the content
      line = line.replace(/^\s{0,3}(?:>\s?)+/, "")
    }
    const trimmed = line.trim()

    if (markdown) {
      const fence = fenceRe.exec(trimmed)
      if (fence !== null) {
        flushParagraph()
        flushList()
        const marker = fence[1]!
        const code: Array<string> = []
        i++
        while (i < lines.length && !lines[i]!.trim().startsWith(marker)) {
          const codeLine = normalizeWhitespace(lines[i]!)
          if (codeLine.length > 0) code.push(codeLine)
          i++
        }
        i++ // closing fence
        if (code.length > 0) blocks.push({ type: "code", lines: code })
        continue
      }
    }

    if (trimmed.length === 0) {
      flushParagraph()
      // a blank line ends a list unless the list goes on after it
      if (list.length > 0) {
        let j = i + 1
        while (j < lines.length && lines[j]!.trim().length === 0) j++
        const next = j < lines.length ? lines[j]! : ""
        if (!(bulletRe.test(next.trim()) || /^\s{2,}\S/.test(next))) flushList()
      }
      i++
      continue
    }

    if (markdown) {
      const atx = atxRe.exec(trimmed)
      if (atx !== null) {
        flushParagraph()
        flushList()
        const text = inline((atx[2] ?? "").replace(/\s+#+$/, ""))
        if (text.length > 0) blocks.push({ type: "heading", level: atx[1]!.length, text })
        i++
        continue
      }
      // setext headings: one paragraph line underlined by === or ---
      if (para.length === 1 && list.length === 0 && /^(=+|-+)$/.test(trimmed)) {
        const text = inline(para[0]!)
        para = []
        if (text.length > 0) blocks.push({ type: "heading", level: trimmed.startsWith("=") ? 1 : 2, text })
        i++
        continue
      }
      if (hrRe.test(trimmed)) {
        flushParagraph()
        flushList()
        i++
        continue
      }
    }

    const bullet = bulletRe.exec(trimmed)
    if (bullet !== null) {
      flushParagraph()
      list.push({ marker: bullet[1]!, text: bullet[2]! })
      i++
      continue
    }
    if (list.length > 0 && (/^\s+\S/.test(line) || para.length === 0)) {
      // continuation of the current item (indented, or a lazy continuation line)
      const last = list[list.length - 1]!
      list[list.length - 1] = { marker: last.marker, text: `${last.text} ${trimmed}` }
      i++
      continue
    }
    flushList()
    // a bold or `Q:` question line starts its own paragraph
    if (para.length > 0 && ((markdown && boldQuestionRe.test(trimmed)) || (qPrefix.test(trimmed) && isQuestionText(trimmed)))) {
      flushParagraph()
    }
    para.push(trimmed)
    i++
  }
  flushParagraph()
  flushList()
  return blocks
}

// ---------------------------------------------------------------------------------------------
// HTML
// ---------------------------------------------------------------------------------------------

const namedEntities: Readonly<Record<string, string>> = {
  amp: "&", lt: "<", gt: ">", quot: "\"", apos: "'", nbsp: " ", ndash: "–", mdash: "—",
  hellip: "…", lsquo: "‘", rsquo: "’", ldquo: "“", rdquo: "”", laquo: "«", raquo: "»",
  copy: "©", reg: "®", trade: "™", euro: "€", pound: "£", yen: "¥", cent: "¢", middot: "·",
  bull: "•", times: "×", divide: "÷", deg: "°", shy: "", zwj: "", zwnj: "", thinsp: " ",
  ensp: " ", emsp: " ", eacute: "é", egrave: "è", agrave: "à", aacute: "á", ccedil: "ç",
  ouml: "ö", uuml: "ü", auml: "ä", szlig: "ß", iexcl: "¡", iquest: "¿", sect: "§", para: "¶"
}

export const decodeEntities = (s: string): string =>
  s.replace(/&(#[xX][0-9a-fA-F]{1,6}|#[0-9]{1,7}|[a-zA-Z][a-zA-Z0-9]{1,31});/g, (whole, body: string) => {
    if (body.startsWith("#")) {
      const code = body[1] === "x" || body[1] === "X" ? Number.parseInt(body.slice(2), 16) : Number.parseInt(body.slice(1), 10)
      if (!Number.isFinite(code) || code <= 0 || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return "\uFFFD"
      return String.fromCodePoint(code)
    }
    return namedEntities[body] ?? namedEntities[body.toLowerCase()] ?? whole
  })

/** Elements whose content is never text. */
const dropped = ["script", "style", "noscript", "template", "svg", "math", "head", "iframe", "object", "canvas", "select"]

const blockTags = new Set([
  "p", "div", "section", "article", "header", "footer", "main", "nav", "aside", "blockquote",
  "pre", "table", "thead", "tbody", "tfoot", "tr", "br", "hr", "figure", "figcaption", "form",
  "details", "address", "fieldset", "legend", "body", "html", "caption", "dl", "center", "title"
])

/** A start or end tag; attribute names and unquoted values cannot hold `<`, so a stray `<` fails fast. */
const tagRe = /<(\/?)([a-zA-Z][a-zA-Z0-9:-]*)((?:\s+[^\s"'<>/=]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'<>]+))?)*)\s*\/?>/g

const parseHtml = (content: string): Array<Block> => {
  let html = content.replace(/\r\n?/g, "\n")
  html = html.replace(/<!--[\s\S]*?(?:-->|$)/g, " ")
  html = html.replace(/<!\[CDATA\[[\s\S]*?(?:\]\]>|$)/g, " ")
  html = html.replace(/<![^<>]*>/g, " ")
  html = html.replace(/<\?[\s\S]*?(?:\?>|$)/g, " ")
  for (const tag of dropped) {
    html = html.replace(new RegExp(`<${tag}\\b[^<>]*>[\\s\\S]*?(?:<\\/${tag}\\s*>|$)`, "gi"), " ")
  }

  const blocks: Array<Block> = []
  let buffer = ""
  let boldDepth = 0
  let sawBold = false
  let sawPlain = false
  let heading = 0
  let listDepth = 0
  let items: Array<string> = []
  let itemOpen = false
  let ordinal: Array<number> = []
  let marker = "-"
  let inDt = false

  const takeText = () => {
    const text = normalizeWhitespace(decodeEntities(buffer))
    const allBold = sawBold && !sawPlain
    buffer = ""
    sawBold = false
    sawPlain = false
    return { text, allBold }
  }
  const flushInline = () => {
    const { allBold, text } = takeText()
    if (text.length === 0) return
    if (itemOpen) {
      items.push(`${marker} ${text}`)
      itemOpen = false
      return
    }
    if (listDepth > 0) {
      // more text inside an item (a second paragraph, a nested heading): it joins the last item
      if (items.length > 0) items[items.length - 1] = `${items[items.length - 1]!} ${text}`
      else items.push(`- ${text}`)
      return
    }
    if (heading > 0) {
      blocks.push({ type: "heading", level: heading, text })
    } else if (isQuestionText(text) && (inDt || allBold || qPrefix.test(text))) {
      blocks.push({ type: "question", text })
    } else {
      blocks.push({ type: "paragraph", text })
    }
  }
  const flushList = () => {
    if (items.length > 0) blocks.push({ type: "list", items })
    items = []
  }

  let last = 0
  for (const m of html.matchAll(tagRe)) {
    const text = html.slice(last, m.index)
    last = m.index + m[0].length
    if (text.length > 0) {
      // stray `<` that did not open a tag stays as text; entity-decoding happens at flush
      buffer += text
      if (text.trim().length > 0) {
        if (boldDepth > 0) sawBold = true
        else sawPlain = true
      }
    }
    const closing = m[1] === "/"
    const name = m[2]!.toLowerCase()

    if (name === "b" || name === "strong") {
      boldDepth = Math.max(0, boldDepth + (closing ? -1 : 1))
      continue
    }
    const h = /^h([1-6])$/.exec(name)
    if (h !== null) {
      flushInline()
      if (!closing) {
        if (listDepth === 0) flushList()
        heading = Number(h[1])
      } else {
        heading = 0
      }
      continue
    }
    if (name === "ul" || name === "ol" || name === "menu") {
      flushInline()
      if (!closing) {
        if (listDepth === 0) flushList()
        listDepth++
        ordinal.push(name === "ol" ? 0 : -1)
      } else {
        listDepth = Math.max(0, listDepth - 1)
        ordinal = ordinal.slice(0, -1)
        if (listDepth === 0) flushList()
      }
      continue
    }
    if (name === "li") {
      flushInline()
      if (!closing) {
        const depth = ordinal.length - 1
        if (depth >= 0 && ordinal[depth]! >= 0) {
          ordinal[depth] = ordinal[depth]! + 1
          marker = `${ordinal[depth]}.`
        } else {
          marker = "-"
        }
        itemOpen = true
      }
      continue
    }
    if (name === "dt" || name === "dd" || name === "summary") {
      flushInline()
      if (listDepth === 0) flushList()
      inDt = !closing && (name === "dt" || name === "summary")
      continue
    }
    if (name === "td" || name === "th") {
      buffer += " "
      continue
    }
    if (blockTags.has(name)) {
      flushInline()
      if (listDepth === 0) flushList()
      continue
    }
    // inline element: its content joins the surrounding text; word-separating where needed
    if (name === "img" || name === "input" || name === "wbr") buffer += " "
  }
  const tail = html.slice(last)
  if (tail.trim().length > 0) {
    buffer += tail
    sawPlain = true
  }
  flushInline()
  flushList()
  return blocks
}

// ---------------------------------------------------------------------------------------------
// Rendering to plain text, with offsets
// ---------------------------------------------------------------------------------------------

interface Placed {
  readonly block: Block
  readonly start: number
  readonly end: number
  /** For lists: [start, end) of each item line. */
  readonly items: ReadonlyArray<readonly [number, number]>
}

const parse = (format: Format, content: string): Array<Block> =>
  format === "html" ? parseHtml(content) : parseLines(content, format === "markdown")

const render = (blocks: ReadonlyArray<Block>): { readonly plain: string; readonly placed: ReadonlyArray<Placed> } => {
  let plain = ""
  const placed: Array<Placed> = []
  for (const block of blocks) {
    if (plain.length > 0) plain += "\n\n"
    const start = plain.length
    const items: Array<readonly [number, number]> = []
    switch (block.type) {
      case "list": {
        block.items.forEach((item, k) => {
          if (k > 0) plain += "\n"
          items.push([plain.length, plain.length + item.length])
          plain += item
        })
        break
      }
      case "code":
        plain += block.lines.join("\n")
        break
      default:
        plain += block.text
    }
    placed.push({ block, start, end: plain.length, items })
  }
  return { plain, placed }
}

/** The canonical plain text of a document: the text that chunk offsets point into. */
export const toPlainText = (format: Format, content: string): string => render(parse(format, content)).plain

// ---------------------------------------------------------------------------------------------
// Splitting an over-long span
// ---------------------------------------------------------------------------------------------

interface Atom {
  readonly start: number
  readonly end: number
  readonly sentenceEnd: boolean
}

/**
 * Cuts `plain[s, e)` into pieces of at most `max` characters, preferring sentence ends, then word
 * boundaries (a word longer than half the limit is cut hard). Each piece after the first starts
 * with up to `overlap` characters (whole words) from the end of the previous piece. With
 * `prefixStart < s`, the first piece starts at `prefixStart` (a question kept with its answer).
 */
const splitSpan = (
  plain: string,
  s: number,
  e: number,
  max: number,
  overlap: number,
  prefixStart: number = s
): Array<readonly [number, number]> => {
  const hard = Math.max(1, Math.floor(max / 2))
  const atoms: Array<Atom> = []
  const wordRe = /\S+/g
  const segment = plain.slice(s, e)
  for (const m of segment.matchAll(wordRe)) {
    const ws = s + m.index
    const we = ws + m[0].length
    const followedByBreak = we >= e || plain[we] === "\n"
    for (let p = ws; p < we; p += hard) {
      const pe = Math.min(we, p + hard)
      const sentenceEnd = pe === we && (/[.!?…;:]["'”’)\]]*$/.test(m[0]) || followedByBreak)
      atoms.push({ start: p, end: pe, sentenceEnd })
    }
  }
  const n = atoms.length
  const pieces: Array<readonly [number, number]> = []
  if (n === 0) return pieces
  let a = 0
  let firstNew = 0
  while (firstNew < n) {
    let startPos = pieces.length === 0 ? Math.min(prefixStart, atoms[0]!.start) : atoms[a]!.start
    while (atoms[firstNew]!.end - startPos > max && a < firstNew) {
      a++
      startPos = atoms[a]!.start
    }
    let b = firstNew
    while (b + 1 < n && atoms[b + 1]!.end - startPos <= max) b++
    if (b === n - 1) {
      pieces.push([startPos, atoms[b]!.end])
      break
    }
    let brk = b
    for (let k = b; k >= firstNew; k--) {
      if (atoms[k]!.sentenceEnd) {
        brk = k
        break
      }
    }
    pieces.push([startPos, atoms[brk]!.end])
    const pieceStartAtom = a
    firstNew = brk + 1
    // overlap: the last whole words of this piece that fit in `overlap` characters
    let j = brk + 1
    while (j - 1 > pieceStartAtom && atoms[brk]!.end - atoms[j - 1]!.start <= overlap) j--
    a = j <= brk ? j : firstNew
  }
  return pieces
}

// ---------------------------------------------------------------------------------------------
// Chunking
// ---------------------------------------------------------------------------------------------

interface Unit {
  readonly start: number
  readonly end: number
  readonly kind: ChunkKind
  readonly items: ReadonlyArray<readonly [number, number]>
}

/**
 * Cuts a document into chunks along its structure. Headings build `headingPath`; consecutive
 * paragraphs and lists under the same heading are merged while they fit (`section`); a list
 * that does not fit is split between items; a question (a heading, a bold line, a `<dt>` or a
 * `Q:` line ending in `?`) is kept with its answer in one `faq` chunk — a heading question's
 * answer is everything up to the next heading or question, another question's answer is the block
 * after it (plus a list right after an answer ending in `:`). Nothing is longer than `maxChars`:
 * a question and answer over the limit are split in the answer, the question staying on the
 * first piece and going into the `headingPath` of the others.
 */
export const chunk = (
  input: { readonly format: Format; readonly content: string },
  options?: ChunkOptions
): ReadonlyArray<Chunk> => {
  const max = Math.max(1, Math.floor(options?.maxChars ?? defaultMaxChars))
  const overlap = Math.max(0, Math.min(Math.floor(options?.overlapChars ?? defaultOverlapChars), Math.floor(max / 2)))
  const { placed, plain } = render(parse(input.format, input.content))
  const out: Array<Chunk> = []
  const emit = (start: number, end: number, kind: ChunkKind, headingPath: ReadonlyArray<string>) => {
    out.push(new Chunk({ position: out.length, text: plain.slice(start, end), headingPath: [...headingPath], kind, start, end }))
  }

  const emitOversize = (unit: Unit, path: ReadonlyArray<string>) => {
    if (unit.kind === "list" && unit.items.length > 1) {
      let group: Array<readonly [number, number]> = []
      const flush = () => {
        if (group.length > 0) emit(group[0]![0], group[group.length - 1]![1], "list", path)
        group = []
      }
      for (const item of unit.items) {
        if (item[1] - item[0] > max) {
          flush()
          for (const [ps, pe] of splitSpan(plain, item[0], item[1], max, overlap)) emit(ps, pe, "list", path)
        } else if (group.length > 0 && item[1] - group[0]![0] > max) {
          flush()
          group.push(item)
        } else {
          group.push(item)
        }
      }
      flush()
      return
    }
    for (const [ps, pe] of splitSpan(plain, unit.start, unit.end, max, overlap)) emit(ps, pe, unit.kind, path)
  }

  let pending: Array<Unit> = []
  let pendingPath: ReadonlyArray<string> = []
  const flushPending = () => {
    let group: Array<Unit> = []
    const flushGroup = () => {
      if (group.length === 0) return
      const kind: ChunkKind = group.length > 1 ? "section" : group[0]!.kind
      emit(group[0]!.start, group[group.length - 1]!.end, kind, pendingPath)
      group = []
    }
    for (const unit of pending) {
      if (unit.end - unit.start > max) {
        flushGroup()
        emitOversize(unit, pendingPath)
      } else if (group.length > 0 && unit.end - group[0]!.start > max) {
        flushGroup()
        group.push(unit)
      } else {
        group.push(unit)
      }
    }
    flushGroup()
    pending = []
  }

  const stack: Array<{ level: number; text: string }> = []
  const path = () => stack.map((h) => h.text)
  const isContent = (p: Placed | undefined) =>
    p !== undefined && (p.block.type === "paragraph" || p.block.type === "list" || p.block.type === "code")

  let i = 0
  while (i < placed.length) {
    const p = placed[i]!
    const block = p.block
    const headingQuestion = block.type === "heading" && isQuestionText(block.text) && isContent(placed[i + 1])
    if (block.type === "heading" && !headingQuestion) {
      flushPending()
      while (stack.length > 0 && stack[stack.length - 1]!.level >= block.level) stack.pop()
      stack.push({ level: block.level, text: block.text })
      i++
      continue
    }
    if (block.type === "heading" || block.type === "question") {
      flushPending()
      if (block.type === "heading") {
        while (stack.length > 0 && stack[stack.length - 1]!.level >= block.level) stack.pop()
      }
      // the answer: under a heading question, everything up to the next heading or question;
      // after a bold/`Q:` question, the next block (and a list right after it when it ends in `:`)
      let j = i + 1
      if (block.type === "heading") {
        while (isContent(placed[j])) j++
      } else if (isContent(placed[j])) {
        j++
        const lead = placed[j - 1]!.block
        if (lead.type === "paragraph" && /:$/.test(lead.text) && placed[j]?.block.type === "list") j++
      }
      const questionText = block.text
      if (j === i + 1) {
        // a question without an answer is an ordinary paragraph
        pendingPath = path()
        pending.push({ start: p.start, end: p.end, kind: "paragraph", items: [] })
        i++
        continue
      }
      const answerStart = placed[i + 1]!.start
      const answerEnd = placed[j - 1]!.end
      const here = path()
      if (answerEnd - p.start <= max) {
        emit(p.start, answerEnd, "faq", here)
      } else {
        // the answer does not fit with its question: split the answer, keep the question on its
        // first piece (when the question is short enough) and in the path of the others
        const keepPrefix = answerStart - p.start <= Math.floor(max / 2)
        if (!keepPrefix) {
          for (const [ps, pe] of splitSpan(plain, p.start, p.end, max, overlap)) emit(ps, pe, "faq", here)
        }
        splitSpan(plain, answerStart, answerEnd, max, overlap, keepPrefix ? p.start : answerStart).forEach(
          ([ps, pe], k) => emit(ps, pe, "faq", k === 0 && keepPrefix ? here : [...here, questionText])
        )
      }
      i = j
      continue
    }
    // content
    const here = path()
    if (pending.length > 0 && here.join("\u0000") !== pendingPath.join("\u0000")) flushPending()
    pendingPath = here
    const kind: ChunkKind = block.type === "list" ? "list" : "paragraph"
    pending.push({ start: p.start, end: p.end, kind, items: p.items })
    i++
  }
  flushPending()
  return out
}
