/**
 * What is wrong with a request body, for the 400 the edge answers: the offset where JSON that
 * does not parse goes wrong (V8's messages do not always say), and the path of the first string
 * holding a NUL character (Postgres text cannot store one).
 */

/** The offset of the first syntax error in `text`, or undefined when it parses. */
export const syntaxErrorOffset = (text: string): number | undefined => {
  let i = 0
  const ws = () => {
    while (i < text.length && " \t\n\r".includes(text[i]!)) i++
  }
  const fail = (): never => {
    throw i
  }
  const literal = (word: string) => {
    for (const c of word) if (text[i++] !== c) fail()
  }
  const string = () => {
    i++
    while (i < text.length) {
      const c = text[i]!
      if (c === "\"") {
        i++
        return
      }
      if (c < " ") fail()
      if (c === "\\") {
        i++
        const e = text[i]
        if (e === "u") {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) fail()
          i += 4
        } else if (e === undefined || !"\"\\/bfnrt".includes(e)) fail()
      }
      i++
    }
    fail()
  }
  const number = () => {
    const match = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i))
    if (match === null) fail()
    i += match![0].length
  }
  const value = (): void => {
    ws()
    const c = text[i]
    if (c === "{") {
      i++
      ws()
      if (text[i] === "}") {
        i++
        return
      }
      while (true) {
        ws()
        if (text[i] !== "\"") fail()
        string()
        ws()
        if (text[i] !== ":") fail()
        i++
        value()
        ws()
        if (text[i] === ",") i++
        else if (text[i] === "}") {
          i++
          return
        } else fail()
      }
    }
    if (c === "[") {
      i++
      ws()
      if (text[i] === "]") {
        i++
        return
      }
      while (true) {
        value()
        ws()
        if (text[i] === ",") i++
        else if (text[i] === "]") {
          i++
          return
        } else fail()
      }
    }
    if (c === "\"") return string()
    if (c === "t") return literal("true")
    if (c === "f") return literal("false")
    if (c === "n") return literal("null")
    return number()
  }
  try {
    value()
    ws()
    return i < text.length ? i : undefined
  } catch (offset) {
    return typeof offset === "number" ? Math.min(offset, text.length) : 0
  }
}

/** The path (`a.b.0`) of the first key or string value containing U+0000, if any. */
export const nulPath = (value: unknown, path: ReadonlyArray<string> = []): string | undefined => {
  if (typeof value === "string") return value.includes("\u0000") ? path.join(".") : undefined
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = nulPath(value[i], [...path, String(i)])
      if (found !== undefined) return found
    }
    return undefined
  }
  if (typeof value === "object" && value !== null) {
    for (const [k, v] of Object.entries(value)) {
      if (k.includes("\u0000")) return [...path, k.replace(/\u0000/g, "\\u0000")].join(".")
      const found = nulPath(v, [...path, k])
      if (found !== undefined) return found
    }
  }
  return undefined
}
