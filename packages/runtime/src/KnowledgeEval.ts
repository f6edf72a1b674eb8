/**
 * Offline retrieval evaluation: each question's hits (deduplicated by document, in rank order)
 * against the source keys expected to answer it. recall@k = share of questions with an expected
 * document in the first k; MRR = mean of 1 / rank of the first expected document (0 if absent
 * from the top 10).
 */
import type { TenantId } from "@tessera/domain/Ids"
import { type SearchMode, SearchQuery } from "@tessera/domain/Knowledge"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { KnowledgeStore } from "./KnowledgeStore.js"

export class Question extends Schema.Class<Question>("Question")({
  question: Schema.String.pipe(Schema.minLength(1)),
  expected: Schema.NonEmptyArray(Schema.String)
}) {}

/** One JSON object per line; a bad line fails with its line number. */
export const parseJsonl = (text: string): Effect.Effect<ReadonlyArray<Question>, Error> =>
  Effect.forEach(
    text.split("\n").map((line, i) => [line.trim(), i + 1] as const).filter(([line]) => line.length > 0),
    ([line, n]) =>
      Schema.decodeUnknown(Schema.parseJson(Question))(line).pipe(
        Effect.mapError((e) => new Error(`line ${n}: ${e.message}`))
      )
  )

export interface Report {
  readonly mode: SearchMode
  readonly questions: number
  readonly recallAt1: number
  readonly recallAt5: number
  readonly mrr: number
  readonly latenciesMs: ReadonlyArray<number>
}

export const evaluate = (tenantId: TenantId, questions: ReadonlyArray<Question>, mode: SearchMode) =>
  Effect.gen(function*() {
    const store = yield* KnowledgeStore
    let at1 = 0
    let at5 = 0
    let reciprocal = 0
    const latenciesMs: Array<number> = []
    for (const q of questions) {
      const started = performance.now()
      const hits = yield* store.search(tenantId, new SearchQuery({ query: q.question, topK: 30, mode }))
      latenciesMs.push(performance.now() - started)
      const ranked = [...new Set(hits.map((h) => h.sourceKey))].slice(0, 10)
      const rank = ranked.findIndex((key) => q.expected.includes(key)) + 1
      if (rank === 1) at1++
      if (rank >= 1 && rank <= 5) at5++
      if (rank >= 1) reciprocal += 1 / rank
    }
    const n = Math.max(1, questions.length)
    return {
      mode,
      questions: questions.length,
      recallAt1: at1 / n,
      recallAt5: at5 / n,
      mrr: reciprocal / n,
      latenciesMs
    } satisfies Report
  })

export const format = (report: Report): string =>
  `${report.mode.padEnd(10)} recall@1 ${report.recallAt1.toFixed(3)}  recall@5 ${report.recallAt5.toFixed(3)}  ` +
  `MRR ${report.mrr.toFixed(3)}  (${report.questions} questions)`
