/**
 * The built-in `local` model: no network, deterministic, and honest about what it cannot do. It
 * is the embedded default for every tier and a real `SLM_A` tier beside remote providers.
 *
 * - Grounded answers: the sentences of the given passages that best cover the question (hashed
 *   n-gram similarity plus shared content words): the best one and the next in its passage, plus
 *   the best of another passage when the question spans two, each passage cited by id. When no
 *   sentence shares enough with the question it answers `answered: false` and says it does not
 *   know, so the workflow escalates instead of guessing.
 * - Structured output (a request with an `outputSchema`): entity extraction — emails, phone
 *   numbers, order numbers, names, companies and amounts — into the schema's properties that it
 *   recognises by name; properties it cannot fill are left out.
 * - Classification: similarity of the text to each label's name, description and examples;
 *   confidence is a softmax over the similarities (temperature 0.05), so a clear match is near 1.
 *
 * - Templated replies: with neither passages nor a schema, the order, lead and complaint flows
 *   (`context.flow`, or the workflow path in `context.workflow`) get a reply built only from the
 *   facts in the context and the message; a missing fact is asked for, with `answered: false`.
 *
 * Token counts are estimates (≈ 4 characters a token); the price is zero.
 */
import {
  type ClassifyRequest,
  ClassifyResponse,
  type GenerateRequest,
  GenerateResponse,
  type Passage,
  type Tier,
  type TierChoice,
  TokenBudgetExceeded,
  Usage
} from "@tessera/domain/Llm"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { embedText, stem } from "./LocalEmbedder.js"
import type { LlmGateway, StreamPart } from "./LlmGateway.js"

export const provider = "local"
export const model = "tessera-local-1"

const dimension = 384

/** ≈ 4 characters per token, at least one. */
export const estimateTokens = (text: string): number => Math.max(1, Math.ceil(text.length / 4))

const cosine = (a: Float32Array, b: Float32Array): number => {
  let dot = 0
  for (let i = 0; i < a.length; i++) dot += a[i]! * b[i]!
  return dot
}

const stopWords = new Set([
  "a", "an", "the", "and", "or", "of", "to", "in", "on", "at", "by", "for", "with", "from", "is", "are", "was", "be",
  "do", "does", "did", "i", "me", "my", "we", "our", "you", "your", "it", "this", "that", "what", "how", "when",
  "where", "can", "will", "there", "please", "hi", "hello", "thanks", "get", "have", "has"
])

const contentWords = (text: string): Set<string> =>
  new Set((text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []).filter((w) => !stopWords.has(w)).map(stem))

const tierOf = (choice: TierChoice): Tier => choice === "auto" ? "SLM_A" : choice

const sentences = (text: string): Array<string> =>
  text
    .replace(/^#+\s.*$/gm, "")
    .split(/(?<=[.!?])\s+|\n{2,}/)
    .map((s) => s.replace(/\s+/g, " ").trim())
    .filter((s) => s.length > 0)

/** The answer from passages: best sentences by similarity and word overlap with the question. */
export const answerFrom = (
  question: string,
  passages: ReadonlyArray<Passage>
): { readonly text: string; readonly citations: ReadonlyArray<string>; readonly answered: boolean } => {
  const q = embedText(question, dimension)
  const qWords = contentWords(question)
  const scored = passages.flatMap((passage, rank) =>
    sentences(passage.text).map((sentence, position) => {
      const words = contentWords(sentence)
      const shared = [...qWords].filter((w) => words.has(w)).length
      const overlap = qWords.size === 0 ? 0 : shared / qWords.size
      // Earlier passages ranked better by retrieval; earlier sentences frame the answer.
      const score = 0.6 * cosine(q, embedText(sentence, dimension)) + 0.4 * overlap - 0.02 * rank - 0.005 * position
      return { passage, sentence, score, overlap, position }
    })
  )
  scored.sort((a, b) => b.score - a.score)
  const best = scored[0]
  if (best === undefined || best.overlap < 0.25) {
    return { text: "I could not find an answer to that in what I know.", citations: [], answered: false }
  }
  // The best sentence, and the one after it in the same passage when it carries on the answer.
  const following = scored.find((s) => s.passage === best.passage && s.position === best.position + 1 && s.overlap > 0)
  // A question that spans two passages (e.g. "shipping time and refunds") gets the other one's best sentence too.
  const other = scored.find((s) => s.passage !== best.passage && s.overlap >= 0.25 && s.score >= 0.75 * best.score)
  const text = [best.sentence, following?.sentence, other?.sentence].filter((s) => s !== undefined).join(" ")
  return { text, citations: other === undefined ? [best.passage.id] : [best.passage.id, other.passage.id], answered: true }
}

const patterns = {
  email: /[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/,
  phone: /(?:\+\d{1,3}[\s-]?)?(?:\(\d{2,4}\)[\s-]?)?\d{3,4}[\s-]?\d{3,4}(?:[\s-]?\d{2,4})?/,
  orderId: /\b(?:order|ord|#)\s*(?:number|no\.?|id)?\s*[:#]?\s*([A-Z]{0,4}-?\d{3,}[A-Z0-9-]*)\b/i,
  amount: /(?:[$€£]\s?(\d[\d,]*(?:\.\d+)?)|(\d[\d,]*(?:\.\d+)?)\s?(?:usd|eur|gbp|dollars|euros|k\b))/i,
  name: /\b(?:[Mm]y name is|[Ii] am|[Ii]'m|[Tt]his is)\s+([A-Z][a-z]+(?:\s[A-Z][a-z]+)?)/,
  company: /\b(?:from|at|with|company(?: is)?|work for)\s+([A-Z][A-Za-z0-9&]+(?:\s(?:[A-Z][A-Za-z0-9&]+|Inc|Ltd|GmbH|LLC))*)/
}

/** Entities found in a text, by the names a schema is likely to use. */
export const extract = (text: string): Record<string, string | number> => {
  const found: Record<string, string | number> = {}
  const email = patterns.email.exec(text)?.[0]
  if (email !== undefined) found["email"] = email
  const withoutEmail = email === undefined ? text : text.replace(email, " ")
  const order = patterns.orderId.exec(withoutEmail)?.[1]
  if (order !== undefined) found["order_id"] = order
  const phone = patterns.phone.exec(withoutEmail.replace(order ?? "\u0000", " "))?.[0]?.trim()
  if (phone !== undefined && phone.replace(/\D/g, "").length >= 7) found["phone"] = phone
  const amount = patterns.amount.exec(withoutEmail)
  if (amount !== null) {
    const raw = (amount[1] ?? amount[2] ?? "").replace(/,/g, "")
    const value = Number(raw) * (/k\b/i.test(amount[0]) ? 1000 : 1)
    if (Number.isFinite(value)) found["amount"] = value
  }
  const name = patterns.name.exec(text)?.[1]
  if (name !== undefined) found["name"] = name
  const company = patterns.company.exec(text)?.[1]
  if (company !== undefined && company !== name) found["company"] = company
  return found
}

const aliases: Record<string, ReadonlyArray<string>> = {
  email: ["email", "email_address", "customer_email", "contact_email"],
  order_id: ["order_id", "order", "order_number"],
  phone: ["phone", "phone_number", "telephone"],
  amount: ["amount", "budget", "budget_usd", "value", "total"],
  name: ["name", "full_name", "customer_name", "contact_name"],
  company: ["company", "company_name", "organisation", "organization"]
}

/** The schema's properties filled from the text's entities (only those it recognises). */
const structured = (schema: unknown, text: string): Record<string, unknown> => {
  const properties = typeof schema === "object" && schema !== null && "properties" in schema
    ? (schema as { readonly properties: unknown }).properties
    : undefined
  const entities = extract(text)
  const out: Record<string, unknown> = {}
  if (typeof properties !== "object" || properties === null) return entities
  for (const key of Object.keys(properties)) {
    for (const [entity, names] of Object.entries(aliases)) {
      if (names.includes(key.toLowerCase()) && entities[entity] !== undefined) out[key] = entities[entity]
    }
  }
  return out
}

/** The run's flow: `context.flow`, else the innermost workflow name that mentions one. */
export const flowOf = (context: Readonly<Record<string, unknown>>): "order" | "lead" | "complaint" | undefined => {
  const named = [context["flow"], context["workflow"]].filter((v): v is string => typeof v === "string").join(" ").toLowerCase()
  const last = (["order", "lead", "complaint"] as const)
    .map((flow) => ({ flow, at: named.lastIndexOf(flow) }))
    .filter((f) => f.at >= 0)
    .sort((a, b) => b.at - a.at)[0]
  return last?.flow
}

const field = (context: Readonly<Record<string, unknown>>, found: Record<string, string | number>, ...names: ReadonlyArray<string>) => {
  for (const name of names) {
    const value = context[name] ?? found[name]
    if (typeof value === "string" && value.trim() !== "") return value.trim()
    if (typeof value === "number" && Number.isFinite(value)) return String(value)
  }
  return undefined
}

/**
 * A reply for the order, lead and complaint flows from the run context and the entities in the
 * message. It states only facts it was given; when a fact the reply needs is missing it asks for
 * it and says it did not answer (`answered: false`), so the workflow can collect it or escalate.
 */
export const templatedReply = (
  context: Readonly<Record<string, unknown>>,
  message: string
): { readonly text: string; readonly answered: boolean } | undefined => {
  const flow = flowOf(context)
  if (flow === undefined) return undefined
  const found = extract(message)
  const name = field(context, found, "name", "customer_name")
  const first = name?.split(" ")[0]
  /** The sentence, addressed to the customer by first name when known. */
  const addressed = (sentence: string) => first === undefined ? sentence : `${first}, ${/^I\b/.test(sentence) ? sentence : sentence[0]!.toLowerCase() + sentence.slice(1)}`
  switch (flow) {
    case "order": {
      const order = field(context, found, "order_id", "order_number")
      if (order === undefined) {
        return { text: "Could you send me your order number (for example #A-10442)? I will look it up right away.", answered: false }
      }
      const status = field(context, found, "status", "order_status")
      if (status === undefined) {
        return { text: `I have your order ${order}, but I cannot see its status yet; a colleague will check it and get back to you.`, answered: false }
      }
      const tracking = field(context, found, "tracking_number", "tracking")
      const eta = field(context, found, "eta", "estimated_delivery")
      return {
        text: addressed(`Your order ${order} is`) + ` ${status.replace(/_/g, " ")}.` +
          (eta === undefined ? "" : ` Expected delivery: ${eta}.`) +
          (tracking === undefined ? "" : ` Tracking number: ${tracking}.`),
        answered: true
      }
    }
    case "lead": {
      const email = field(context, found, "email", "customer_email")
      const company = field(context, found, "company")
      if (email === undefined) {
        return { text: `Thanks ${name ?? "for your interest"}! What email address should our sales team use to reach you?`, answered: false }
      }
      return {
        text: `Thanks ${name ?? "for your interest"}! I have passed your request${company === undefined ? "" : ` for ${company}`} to our sales team; they will reach you at ${email} within one business day.`,
        answered: true
      }
    }
    case "complaint": {
      const ticket = field(context, found, "ticket_id", "ticket")
      const email = field(context, found, "customer_email", "email")
      const order = field(context, found, "order_id")
      return {
        text: addressed(`I'm sorry about this${order === undefined ? "" : ` with order ${order}`}. `) +
          (ticket === undefined ? "I have passed your complaint to our support team" : `I have logged it as ticket ${ticket}`) +
          (email === undefined ? " and someone will follow up here." : ` and we will follow up at ${email}.`),
        answered: true
      }
    }
  }
}

const lastUser = (request: GenerateRequest): string =>
  [...request.messages].reverse().find((m) => m.role === "user")?.content ?? ""

export const generate = (request: GenerateRequest): GenerateResponse => {
  const question = lastUser(request)
  const input = estimateTokens(request.messages.map((m) => m.content).join("\n") + request.passages.map((p) => p.text).join("\n"))
  const reply = (text: string, extra: { json?: unknown; citations: ReadonlyArray<string>; answered: boolean }) =>
    new GenerateResponse({
      text,
      ...(extra.json === undefined ? {} : { json: extra.json }),
      tier: tierOf(request.tier),
      provider,
      model,
      usage: new Usage({ inputTokens: input, outputTokens: estimateTokens(text), reported: false }),
      costUsd: 0,
      citations: extra.citations,
      answered: extra.answered,
      cached: false
    })
  if (request.outputSchema !== undefined) {
    const json = structured(request.outputSchema, question)
    return reply(JSON.stringify(json), { json, citations: [], answered: Object.keys(json).length > 0 })
  }
  if (request.passages.length > 0) {
    const answer = answerFrom(question, request.passages)
    return reply(answer.text, answer)
  }
  const templated = templatedReply(request.context, question)
  if (templated !== undefined) return reply(templated.text, { citations: [], answered: templated.answered })
  return reply("I can only answer from the knowledge base or the details of your request, and I have neither for this.", {
    citations: [],
    answered: false
  })
}

const labelText = (label: ClassifyRequest["labels"][number]): ReadonlyArray<string> => [
  label.name.replace(/[_-]/g, " "),
  ...(label.description === "" ? [] : [label.description]),
  ...label.examples
]

export const classify = (request: ClassifyRequest): ClassifyResponse => {
  const text = embedText(request.text, dimension)
  const words = contentWords(request.text)
  const scores = request.labels.map((label) => {
    const similarities = labelText(label).map((t) => {
      const shared = [...contentWords(t)].filter((w) => words.has(w)).length
      return 0.7 * cosine(text, embedText(t, dimension)) + 0.3 * (words.size === 0 ? 0 : Math.min(1, shared / words.size))
    })
    return Math.max(...similarities)
  })
  const top = Math.max(...scores)
  const weights = scores.map((s) => Math.exp((s - top) / 0.05))
  const total = weights.reduce((a, b) => a + b, 0)
  const best = scores.indexOf(top)
  return new ClassifyResponse({
    label: request.labels[best]!.name,
    confidence: Math.round((weights[best]! / total) * 1000) / 1000,
    tier: tierOf(request.tier),
    usage: new Usage({ inputTokens: estimateTokens(request.text), outputTokens: 1, reported: false }),
    costUsd: 0
  })
}

/** Fails with TokenBudgetExceeded when the answer would spend more than the request's budget. */
const withinBudget = (request: GenerateRequest) =>
  Effect.flatMap(Effect.sync(() => generate(request)), (response) => {
    const needed = response.usage.inputTokens + response.usage.outputTokens
    return request.tokenBudget !== undefined && needed > request.tokenBudget
      ? Effect.fail(new TokenBudgetExceeded({ budget: request.tokenBudget, needed }))
      : Effect.succeed(response)
  })

/** An answer as the local model streams it: word-sized deltas, each word with the whitespace after it. */
export const deltasOf = (text: string): ReadonlyArray<string> => text.split(/(?<=\s)/).filter((delta) => delta.length > 0)

/** The gateway with every tier on the local model. */
export const gateway: LlmGateway["Type"] = {
  generate: withinBudget,
  stream: (request) =>
    Stream.unwrap(Effect.map(withinBudget(request), (response) => {
      const deltas = deltasOf(response.text).map((text): StreamPart => ({ _tag: "Delta", text }))
      return Stream.fromIterable<StreamPart>([...deltas, { _tag: "Done", response }])
    })),
  classify: (request) => Effect.sync(() => classify(request))
}
