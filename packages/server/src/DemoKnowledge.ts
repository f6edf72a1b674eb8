/**
 * The demo tenant's knowledge base: the Northwind Goods FAQ (one document per entry, keyed by
 * its `<!-- id: … -->` comment, tagged with its section) and its policy pages (one document
 * each), under `packages/server/demo/knowledge`. Loaded by `tessera dev`; adding is idempotent by
 * content hash, so a restart re-indexes nothing.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import type { TenantId } from "@tessera/domain/Ids"
import { DocumentInput } from "@tessera/domain/Knowledge"
import { KnowledgeStore } from "@tessera/runtime/KnowledgeStore"
import * as Effect from "effect/Effect"
import { fileURLToPath } from "node:url"

export const directory = fileURLToPath(new URL("../demo/knowledge", import.meta.url))

const idComment = /^<!--\s*id:\s*([A-Za-z0-9_-]+)\s*-->$/

/** FAQ Markdown (`## Topic`, `### Question?`, id comment, answer) → one document per entry. */
export const faqEntries = (markdown: string): ReadonlyArray<DocumentInput> => {
  const entries: Array<DocumentInput> = []
  let topic = ""
  let current: { question: string; id: string | undefined; lines: Array<string> } | undefined
  const flush = () => {
    if (current?.id !== undefined) {
      const answer = current.lines.join("\n").trim()
      entries.push(
        new DocumentInput({
          sourceKey: current.id,
          title: current.question,
          format: "markdown",
          content: `## ${topic}\n\n### ${current.question}\n\n${answer}`,
          tags: topic === "" ? [] : [topic.toLowerCase()],
          metadata: { kind: "faq" }
        })
      )
    }
    current = undefined
  }
  for (const line of markdown.split("\n")) {
    if (line.startsWith("## ")) {
      flush()
      topic = line.slice(3).trim()
    } else if (line.startsWith("### ")) {
      flush()
      current = { question: line.slice(4).trim(), id: undefined, lines: [] }
    } else if (current !== undefined) {
      const id = idComment.exec(line.trim())
      if (id !== null && current.id === undefined) current.id = id[1]
      else current.lines.push(line)
    }
  }
  flush()
  return entries
}

/** A policy page: `# Title`, its id comment, the body. */
export const page = (markdown: string): DocumentInput | undefined => {
  const lines = markdown.split("\n")
  const title = lines.find((l) => l.startsWith("# "))?.slice(2).trim()
  const id = lines.map((l) => idComment.exec(l.trim())).find((m) => m !== null)?.[1]
  if (title === undefined || id === undefined) return undefined
  return new DocumentInput({
    sourceKey: id,
    title,
    format: "markdown",
    content: lines.filter((l) => idComment.exec(l.trim()) === null).join("\n"),
    tags: ["policy"],
    metadata: { kind: "policy" }
  })
}

export const documents = Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path
  const faq = faqEntries(yield* fs.readFileString(path.join(directory, "faq.md")))
  const policyDir = path.join(directory, "policies")
  const pages: Array<DocumentInput> = []
  for (const file of (yield* fs.readDirectory(policyDir)).filter((f) => f.endsWith(".md")).sort()) {
    const doc = page(yield* fs.readFileString(path.join(policyDir, file)))
    if (doc !== undefined) pages.push(doc)
  }
  return [...faq, ...pages]
})

/** Adds every demo document to the tenant's knowledge base; answers how many were new. */
export const load = (tenantId: TenantId) =>
  Effect.gen(function*() {
    const store = yield* KnowledgeStore
    const docs = yield* documents
    const added = yield* Effect.forEach(docs, (doc) => store.add(tenantId, doc), { concurrency: 4 })
    const created = added.filter((a) => a.created).length
    yield* Effect.logInfo(`demo knowledge base: ${docs.length} documents (${created} new)`)
    return { documents: docs.length, created }
  })
