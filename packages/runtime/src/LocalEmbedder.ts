/**
 * The embedded default embedder: deterministic, no network, no model file.
 *
 * Features of a text (lower-cased, NFKC-normalised, split into letter/digit words):
 * - word unigrams of the stemmed words (weight 1),
 * - word bigrams of consecutive stemmed words (weight 0.5),
 * - character 3- and 4-grams of each (unstemmed) word with boundary markers `<word>` (weight
 *   0.3 per word, shared among its n-grams),
 * where stop words are left out (unless the text has nothing else). Each feature's count gets
 * sublinear weighting (`1 + ln tf`), is hashed with FNV-1a 32-bit into `dimension` buckets with
 * the top bit as sign, and the vector is L2-normalised.
 *
 * Defined behaviour for a text with no letter or digit at all (`""`, `"?!"`): the zero vector
 * (all components 0, norm 0), whose cosine with anything is 0.
 */
import type { EmbeddingError } from "@tessera/domain/Knowledge"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Embedder } from "./Embedder.js"

export const defaultDimension = 384

const stopWords: ReadonlySet<string> = new Set([
  "a", "an", "the", "and", "or", "but", "if", "then", "else", "of", "to", "in", "on", "at", "by",
  "for", "with", "from", "as", "into", "about", "is", "are", "was", "were", "be", "been", "being",
  "am", "do", "does", "did", "have", "has", "had", "it", "its", "this", "that", "these", "those",
  "i", "me", "my", "we", "our", "you", "your", "he", "him", "his", "she", "her", "they", "them",
  "their", "what", "which", "who", "whom", "so", "than", "too", "very", "can", "will", "just",
  "there", "here", "not", "no", "s", "t", "would", "should", "could", "up", "out", "over"
])

const isVowel = (c: string) => c === "a" || c === "e" || c === "i" || c === "o" || c === "u" || c === "y"

/** Drops one of a final doubled consonant left by a stripped suffix (`shipp` → `ship`). */
const undouble = (w: string): string => {
  const n = w.length
  if (n >= 3 && w[n - 1] === w[n - 2] && !isVowel(w[n - 1]!) && !"lsz".includes(w[n - 1]!)) return w.slice(0, -1)
  return w
}

/**
 * A light, deterministic English stemmer: one suffix rule (the first that applies), then a
 * final silent `e` is dropped, so that `purchase`, `purchases` and `purchased` meet at `purchas`.
 */
export const stem = (word: string): string => {
  let w = word
  if (w.length <= 3 || /\d/.test(w)) return w
  const strip = (suffix: string, minStem: number): boolean => {
    if (w.endsWith(suffix) && w.length - suffix.length >= minStem) {
      w = w.slice(0, -suffix.length)
      return true
    }
    return false
  }
  if (w.endsWith("ies") && w.length > 4) w = `${w.slice(0, -3)}y`
  else if (w.endsWith("sses")) w = w.slice(0, -2)
  else if (strip("ingly", 3) || strip("ing", 3) || strip("edly", 3) || strip("ed", 3)) w = undouble(w)
  else if (strip("ness", 3) || strip("ment", 4) || strip("ly", 3)) {
    // nothing more
  } else if (/(?:ss|x|z|ch|sh|[^aeiou]s)es$/.test(w) && w.length > 4) w = w.slice(0, -2)
  else if (w.endsWith("s") && !/(?:ss|us|is)$/.test(w)) w = w.slice(0, -1)
  if (w.endsWith("e") && w.length >= 4) w = w.slice(0, -1)
  if (w.endsWith("i") && w.length >= 4) w = `${w.slice(0, -1)}y`
  return w
}

/** FNV-1a, 32-bit, over UTF-16 code units. */
export const fnv1a = (s: string): number => {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

const words = (text: string): Array<string> => text.normalize("NFKC").toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []

/** The weighted features of a text, before hashing. */
export const features = (text: string): Map<string, number> => {
  const all = words(text)
  const content = all.filter((w) => !stopWords.has(w))
  const kept = content.length > 0 ? content : all
  const counts = new Map<string, number>()
  const weights = new Map<string, number>()
  const add = (feature: string, weight: number) => {
    counts.set(feature, (counts.get(feature) ?? 0) + 1)
    weights.set(feature, (weights.get(feature) ?? 0) + weight)
  }
  const stems = kept.map(stem)
  for (let i = 0; i < stems.length; i++) {
    add(`w:${stems[i]!}`, 1)
    if (i + 1 < stems.length) add(`b:${stems[i]!} ${stems[i + 1]!}`, 0.5)
  }
  for (const w of kept) {
    const marked = `<${w}>`
    const grams: Array<string> = []
    for (const n of [3, 4]) {
      for (let i = 0; i + n <= marked.length; i++) grams.push(marked.slice(i, i + n))
    }
    const per = 0.3 / Math.sqrt(grams.length)
    for (const g of grams) add(`c:${g}`, per)
  }
  const out = new Map<string, number>()
  // sublinear tf: (1 + ln tf) times the feature's mean weight
  for (const [feature, count] of counts) out.set(feature, (1 + Math.log(count)) * (weights.get(feature)! / count))
  return out
}

/** The embedding of one text; see the module comment. */
export const embedText = (text: string, dimension: number): Float32Array => {
  const acc = new Float64Array(dimension)
  for (const [feature, weight] of features(text)) {
    const h = fnv1a(feature)
    const bucket = (h & 0x7fffffff) % dimension
    acc[bucket] = acc[bucket]! + (h >>> 31 === 1 ? -weight : weight)
  }
  let norm = 0
  for (let i = 0; i < dimension; i++) norm += acc[i]! * acc[i]!
  norm = Math.sqrt(norm)
  const out = new Float32Array(dimension)
  if (norm > 0) for (let i = 0; i < dimension; i++) out[i] = acc[i]! / norm
  return out
}

export const make = (options?: { readonly dimension?: number }): Embedder["Type"] => {
  const dimension = options?.dimension ?? defaultDimension
  if (!Number.isInteger(dimension) || dimension < 1) {
    throw new RangeError(`LocalEmbedder dimension must be a positive integer, got ${dimension}`)
  }
  return {
    model: `local/hash-${dimension}`,
    dimension,
    embed: (texts: ReadonlyArray<string>): Effect.Effect<ReadonlyArray<Float32Array>, EmbeddingError> =>
      Effect.sync(() => texts.map((text) => embedText(text, dimension)))
  }
}

export const layer: Layer.Layer<Embedder> = Layer.sync(Embedder, () => make())

export const layerWith = (options: { readonly dimension?: number }): Layer.Layer<Embedder> =>
  Layer.sync(Embedder, () => make(options))
