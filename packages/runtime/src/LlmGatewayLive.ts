/**
 * The LLM gateway. For each request it resolves the tier (`auto` asks the router), the tenant's
 * routes for that tier (provider, model, price; tenant overrides from `llm_tenant_routes`), and
 * tries them in order (failover). Each remote call goes through the provider's circuit breaker
 * and is retried on 429/5xx/transport errors with exponential backoff that honours `Retry-After`,
 * all on Effect's clock. Tokens are the provider's usage when reported, an estimate otherwise;
 * cost is the route's price; the request's `tokenBudget` caps the output and fails the call when
 * exceeded. Structured output is validated against the request's JSON schema and repaired a
 * bounded number of times. Answers may be cached per tenant (key: tenant, provider, model, hash
 * of the request) for a TTL. Tier `auto`: the router's tier first; an answer that fails (not
 * answered, invalid output, provider error) escalates one tier, and the outcome goes back to
 * the router with the request's idempotency key (a run's `<run id>:<journal step id>`), through
 * which the run's later validation and feedback reach the decision.
 *
 * Assemblies: `layerLocal` (every tier on the built-in local model, no configuration) and
 * `layer` (from the environment, see `Settings`; needs `Database` for tenant overrides).
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import type * as HttpClient from "@effect/platform/HttpClient"
import {
  type ClassifyRequest,
  ClassifyResponse,
  GenerateRequest,
  GenerateResponse,
  LlmError,
  LlmMessage,
  OutputInvalid,
  type Tier,
  TokenBudgetExceeded,
  Usage
} from "@tessera/domain/Llm"
import * as Chunk from "effect/Chunk"
import * as Config from "effect/Config"
import * as Clock from "effect/Clock"
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as AnthropicProvider from "./AnthropicProvider.js"
import * as CircuitBreaker from "./CircuitBreaker.js"
import { Database } from "./Database.js"
import { jsonSchemaViolation } from "./Gates.js"
import * as LlmCache from "./LlmCache.js"
import { type GenerateError, LlmGateway, type StreamPart } from "./LlmGateway.js"
import * as LlmProvider from "./LlmProvider.js"
import * as LlmRoutes from "./LlmRoutes.js"
import * as LlmTokens from "./LlmTokens.js"
import * as LocalModel from "./LocalModel.js"
import * as OpenAiProvider from "./OpenAiProvider.js"
import * as Router from "./Router.js"
import { type Decision, RouterPort } from "./RouterPort.js"
import { TokenStream } from "./TokenStream.js"

export interface Options {
  /** The routes of every tenant without an override. */
  readonly routes: LlmRoutes.TierRoutes
  /** Remote providers by name (`openai`, `anthropic`, …); `local` is always there. */
  readonly providers: ReadonlyMap<string, LlmProvider.Provider>
  /** A tenant's own routes for some tiers (default: none). */
  readonly tenantRoutes?: (tenantId: string) => Effect.Effect<Partial<LlmRoutes.TierRoutes>>
  readonly cache?: LlmCache.LlmCache
  /** 0 disables the cache. */
  readonly cacheTtl: Duration.DurationInput
  /** Retries of one route after its first attempt. */
  readonly retries: number
  readonly retryBase: Duration.DurationInput
  /** Cap on one backoff delay, `Retry-After` included. */
  readonly retryMax: Duration.DurationInput
  /** One attempt's time limit. */
  readonly timeout: Duration.DurationInput
  readonly breaker: CircuitBreaker.Options
  /** Repairs of invalid structured output after the first answer. */
  readonly maxRepairs: number
  readonly router?: RouterPort["Type"]
  /** Where the text of requests with a stream target goes (`LlmTokens`); not published when absent. */
  readonly tokens?: TokenStream["Type"]
}

export const defaults: Omit<Options, "providers"> = {
  routes: LlmRoutes.allLocal,
  cacheTtl: Duration.minutes(10),
  retries: 3,
  retryBase: Duration.millis(500),
  retryMax: Duration.seconds(30),
  timeout: Duration.seconds(60),
  breaker: { failureThreshold: 5, resetAfter: Duration.seconds(30) },
  maxRepairs: 2
}

const tokensMetric = Metric.counter("llm_tokens_total", { description: "Tokens spent on LLM calls (input + output)", incremental: true })
const costMetric = Metric.counter("llm_cost_usd_total", { description: "Cost of LLM calls in USD" })
const callsMetric = Metric.counter("llm_calls_total", { description: "LLM calls by provider and outcome", incremental: true })

const count = (tenantId: string, tier: Tier, provider: string, tokens: number, costUsd: number) =>
  Effect.all([
    Metric.update(Metric.tagged(Metric.tagged(Metric.tagged(tokensMetric, "tenant", tenantId), "tier", tier), "provider", provider), tokens),
    Metric.update(Metric.tagged(Metric.tagged(Metric.tagged(costMetric, "tenant", tenantId), "tier", tier), "provider", provider), costUsd)
  ], { discard: true })

const called = (provider: string, outcome: string) =>
  Metric.update(Metric.tagged(Metric.tagged(callsMetric, "provider", provider), "outcome", outcome), 1)

interface StreamState {
  readonly text: string
  readonly input: number | undefined
  readonly output: number | undefined
}

/** How long an answer is kept for its idempotency key. */
const idempotencyTtlMs = Duration.toMillis(Duration.hours(24))

const nextTier: Record<Tier, Tier | undefined> = { SLM_A: "SLM_B", SLM_B: "LLM", LLM: undefined }

const allText = (request: GenerateRequest): string =>
  [...request.messages.map((m) => m.content), ...request.passages.map((p) => `[${p.id}] ${p.text}`)].join("\n")

/** The messages a remote model gets: passages and the schema folded into a system message. */
const promptOf = (request: GenerateRequest): ReadonlyArray<LlmMessage> => {
  const extra: Array<string> = []
  if (request.passages.length > 0) {
    extra.push(
      "Answer only from these passages and cite the ids you used in square brackets, e.g. [id]. If they do not contain the answer, say you do not know.\n\n" +
        request.passages.map((p) => `[${p.id}] ${p.text}`).join("\n\n")
    )
  }
  if (request.outputSchema !== undefined) {
    extra.push(`Reply with one JSON object that satisfies this JSON schema, and nothing else:\n${JSON.stringify(request.outputSchema)}`)
  }
  return extra.length === 0 ? request.messages : [new LlmMessage({ role: "system", content: extra.join("\n\n") }), ...request.messages]
}

const decodeVerdict = Schema.decodeUnknownOption(Schema.Struct({ label: Schema.String, confidence: Schema.Number }))

const decodeCached = Schema.decodeUnknownOption(Schema.parseJson(GenerateResponse))

const refusal = /\b(i (?:do not|don't) know|cannot (?:find|answer)|can't (?:find|answer)|no information)\b/i

/** A remote answer: the passage ids it cites, and whether it says it cannot answer. */
const groundingOf = (request: GenerateRequest, text: string) => ({
  citations: request.passages.filter((p) => text.includes(`[${p.id}]`)).map((p) => p.id),
  answered: text.trim().length > 0 && !refusal.test(text)
})

const parseJson = (text: string): Either.Either<unknown, string> => {
  const start = text.indexOf("{")
  const end = text.lastIndexOf("}")
  if (start < 0 || end < start) return Either.left("the answer holds no JSON object")
  try {
    return Either.right(JSON.parse(text.slice(start, end + 1)))
  } catch (error) {
    return Either.left(`the JSON does not parse: ${String(error)}`)
  }
}

export const make = (options: Options): Effect.Effect<LlmGateway["Type"]> =>
  Effect.gen(function*() {
    const breakers = yield* CircuitBreaker.make(options.breaker)
    const cacheTtlMs = Duration.toMillis(options.cacheTtl)
    const retryMax = Duration.decode(options.retryMax)
    const timeout = Duration.decode(options.timeout)

    const routesOf = (tenantId: string, tier: Tier): Effect.Effect<ReadonlyArray<LlmRoutes.Route>> =>
      options.tenantRoutes === undefined
        ? Effect.succeed(options.routes[tier])
        : Effect.map(options.tenantRoutes(tenantId), (own) => own[tier] ?? options.routes[tier])

    const providerError = (provider: string, failure: LlmProvider.ProviderFailure) =>
      new LlmError({ provider, reason: failure.reason, detail: failure.detail })

    const policy = Schedule.exponential(options.retryBase, 2).pipe(
      Schedule.intersect(Schedule.recurs(options.retries)),
      Schedule.intersect(Schedule.identity<LlmProvider.ProviderFailure>()),
      Schedule.whileInput((e: LlmProvider.ProviderFailure) => e.retryable),
      Schedule.modifyDelay(([, e], delay) =>
        Duration.min(Duration.max(delay, e.retryAfterMs === undefined ? Duration.zero : Duration.millis(e.retryAfterMs)), retryMax)
      )
    )

    /** One remote call: breaker around retries around time-limited attempts. */
    const remote = <A, R>(provider: LlmProvider.Provider, attempt: Effect.Effect<A, LlmProvider.ProviderFailure, R>) =>
      breakers.run(
        `llm:${provider.name}`,
        attempt.pipe(
          Effect.timeoutFail({
            duration: timeout,
            onTimeout: () =>
              new LlmProvider.ProviderFailure({ reason: "timeout", detail: `no answer within ${Duration.format(timeout)}`, retryable: true, retryAfterMs: undefined })
          }),
          Effect.tapError((e) => called(provider.name, e.reason)),
          Effect.retry(policy),
          Effect.mapError((e) => providerError(provider.name, e))
        ),
        (e) => e._tag === "LlmError" && (e.reason === "unavailable" || e.reason === "rate_limited" || e.reason === "timeout")
      ).pipe(
        Effect.catchTag("CircuitOpen", (e) =>
          Effect.fail(new LlmError({ provider: provider.name, reason: "circuit_open", detail: `retry in ${e.retryAfterMs} ms` }))
        )
      )

    const budgetFor = (request: GenerateRequest, spent: number) => {
      const input = LocalModel.estimateTokens(allText(request))
      if (request.tokenBudget === undefined) return Either.right(request.maxOutputTokens)
      const left = request.tokenBudget - spent - input
      if (left <= 0) return Either.left(new TokenBudgetExceeded({ budget: request.tokenBudget, needed: spent + input + 1 }))
      return Either.right(Math.min(left, request.maxOutputTokens ?? left))
    }

    /** A request on one route, repairs included; the response carries the summed usage. */
    const onRoute = (
      request: GenerateRequest,
      tier: Tier,
      route: LlmRoutes.Route
    ): Effect.Effect<GenerateResponse, GenerateError> =>
      Effect.gen(function*() {
        if (route.provider === "local") {
          const response = LocalModel.generate(request)
          const out = new GenerateResponse({ ...response, tier, model: route.model })
          return yield* checked(request, out, 0)
        }
        const provider = options.providers.get(route.provider)
        if (provider === undefined) {
          return yield* new LlmError({ provider: route.provider, reason: "not_configured", detail: `no ${route.provider} provider is configured` })
        }
        let messages = promptOf(request)
        let inputTokens = 0
        let outputTokens = 0
        let reported = true
        for (let attempt = 0;; attempt++) {
          const maxOutputTokens = yield* budgetFor(request, inputTokens + outputTokens)
          const completion = yield* remote(
            provider,
            LlmTokens.complete(options.tokens, request, provider, { model: route.model, messages, maxOutputTokens, temperature: request.temperature, json: request.outputSchema !== undefined })
          )
          yield* called(provider.name, "ok")
          const usage = completion.usage ?? {
            inputTokens: LocalModel.estimateTokens(messages.map((m) => m.content).join("\n")),
            outputTokens: LocalModel.estimateTokens(completion.text)
          }
          reported = reported && completion.usage !== undefined
          inputTokens += usage.inputTokens
          outputTokens += usage.outputTokens
          const response = (json: unknown) =>
            new GenerateResponse({
              text: completion.text,
              ...(json === undefined ? {} : { json }),
              tier,
              provider: provider.name,
              model: route.model,
              usage: new Usage({ inputTokens, outputTokens, reported }),
              costUsd: LlmRoutes.cost(route, inputTokens, outputTokens),
              ...(request.outputSchema === undefined ? groundingOf(request, completion.text) : { citations: [], answered: true }),
              cached: false
            })
          if (request.outputSchema === undefined) return yield* checked(request, response(undefined), 0)
          const parsed = parseJson(completion.text)
          const violation = Either.isLeft(parsed) ? parsed.left : jsonSchemaViolation(request.outputSchema, parsed.right)
          if (violation === undefined) return yield* checked(request, response(Either.getOrThrow(parsed)), 0)
          if (attempt >= options.maxRepairs) return yield* new OutputInvalid({ attempts: attempt + 1, detail: violation })
          messages = [
            ...messages,
            new LlmMessage({ role: "assistant", content: completion.text }),
            new LlmMessage({ role: "user", content: `That reply is not valid: ${violation}. Reply again with only the corrected JSON object.` })
          ]
        }
      })

    /** Budget and schema checks on a finished response. */
    const checked = (
      request: GenerateRequest,
      response: GenerateResponse,
      spent: number
    ): Effect.Effect<GenerateResponse, TokenBudgetExceeded | OutputInvalid> => {
      const needed = spent + response.usage.inputTokens + response.usage.outputTokens
      if (request.tokenBudget !== undefined && needed > request.tokenBudget) {
        return Effect.fail(new TokenBudgetExceeded({ budget: request.tokenBudget, needed }))
      }
      if (request.outputSchema !== undefined && response.provider === LocalModel.provider) {
        const violation = jsonSchemaViolation(request.outputSchema, response.json)
        if (violation !== undefined) return Effect.fail(new OutputInvalid({ attempts: 1, detail: violation }))
      }
      return Effect.succeed(response)
    }

    const cacheable = (request: GenerateRequest) => ({
      messages: request.messages,
      passages: request.passages,
      outputSchema: request.outputSchema,
      maxOutputTokens: request.maxOutputTokens,
      temperature: request.temperature,
      context: request.context
    })

    /** The route list of a tier with failover; cache lookups per route. */
    const onTier = (request: GenerateRequest, tier: Tier): Effect.Effect<GenerateResponse, GenerateError> =>
      Effect.gen(function*() {
        const routes = yield* routesOf(request.tenantId, tier)
        let last: GenerateError = new LlmError({ provider: "none", reason: "not_configured", detail: `no route for tier ${tier}` })
        for (const route of routes) {
          const key = LlmCache.key(request.tenantId, route.provider, route.model, cacheable(request))
          if (options.cache !== undefined && cacheTtlMs > 0 && route.provider !== "local") {
            const hit = yield* options.cache.get(key)
            if (Option.isSome(hit)) {
              const cached = decodeCached(hit.value)
              if (Option.isSome(cached)) {
                const response = new GenerateResponse({ ...cached.value, tier, costUsd: 0, cached: true })
                const ok = yield* Effect.either(checked(request, response, 0))
                if (Either.isRight(ok)) return ok.right
              }
            }
          }
          const result = yield* Effect.either(onRoute(request, tier, route))
          if (Either.isRight(result)) {
            const response = result.right
            yield* count(request.tenantId, tier, response.provider, response.usage.inputTokens + response.usage.outputTokens, response.costUsd)
            if (options.cache !== undefined && cacheTtlMs > 0 && route.provider !== "local") {
              yield* options.cache.set(key, JSON.stringify(response), cacheTtlMs)
            }
            return response
          }
          last = result.left
          // A budget or schema failure would repeat on the next provider: stop here.
          if (last._tag !== "LlmError") return yield* Effect.fail(last)
          yield* Effect.logWarning(`LLM route ${route.provider}:${route.model} failed for tier ${tier}: ${last.reason}; trying the next route`).pipe(
            Effect.annotateLogs("tenant_id", request.tenantId)
          )
        }
        return yield* Effect.fail(last)
      })

    const decide = (tenantId: string, text: string, strict: boolean, context: Readonly<Record<string, unknown>>) =>
      options.router === undefined
        ? Effect.succeed<Decision | undefined>(undefined)
        : Effect.map(
          options.router.decide({ tenantId, text, strict, plan: typeof context["plan"] === "string" ? context["plan"] : undefined }),
          (decided): Decision | undefined => decided
        )

    /**
     * A request with an idempotency key is answered once: a repeat (a retried step, a replayed
     * run) gets the stored answer, marked cached and not billed again.
     */
    const generate = (request: GenerateRequest): Effect.Effect<GenerateResponse, GenerateError> => {
      const key = request.idempotencyKey
      if (key === undefined || options.cache === undefined) return route(request)
      const cache = options.cache
      const entry = `${request.tenantId}:idempotency:${key}`
      return Effect.flatMap(cache.get(entry), (hit) => {
        const stored = Option.flatMap(hit, decodeCached)
        if (Option.isSome(stored)) return Effect.succeed(new GenerateResponse({ ...stored.value, costUsd: 0, cached: true }))
        return Effect.tap(route(request), (response) => cache.set(entry, JSON.stringify(response), idempotencyTtlMs))
      })
    }

    const route = (request: GenerateRequest): Effect.Effect<GenerateResponse, GenerateError> =>
      Effect.gen(function*() {
        if (request.tier !== "auto") return yield* onTier(request, request.tier)
        const decided = yield* decide(request.tenantId, allText(request), request.outputSchema !== undefined, request.context)
        const first: Tier = decided?.decision.tier ?? "SLM_A"
        let tier = first
        let firstPassed = false
        let inputTokens = 0
        let outputTokens = 0
        let reported = true
        let costUsd = 0
        for (;;) {
          const spent = inputTokens + outputTokens
          const budget = request.tokenBudget === undefined ? {} : { tokenBudget: Math.max(0, request.tokenBudget - spent) }
          const result = yield* Effect.either(onTier(new GenerateRequest({ ...request, ...budget }), tier))
          const passed = Either.isRight(result) && result.right.answered
          if (tier === first) firstPassed = passed
          if (Either.isRight(result)) {
            inputTokens += result.right.usage.inputTokens
            outputTokens += result.right.usage.outputTokens
            reported = reported && result.right.usage.reported
            costUsd += result.right.costUsd
          }
          const up = nextTier[tier]
          if (passed || up === undefined || (Either.isLeft(result) && result.left._tag === "TokenBudgetExceeded")) {
            if (decided !== undefined && options.router !== undefined) {
              yield* options.router.record({
                tenantId: request.tenantId,
                ...(request.idempotencyKey === undefined ? {} : { key: request.idempotencyKey }),
                decided,
                tier,
                passed: firstPassed,
                answered: passed,
                repairs: 0,
                costUsd
              })
            }
            if (Either.isLeft(result)) return yield* Effect.fail(result.left)
            // Escalations are paid for too: the answer carries the whole bill.
            return new GenerateResponse({ ...result.right, usage: new Usage({ inputTokens, outputTokens, reported }), costUsd })
          }
          tier = up
        }
      }).pipe(Effect.withSpan("LlmGateway.generate", { attributes: { tenant: request.tenantId, tier: request.tier } }))

    /**
     * Opens a provider stream: pulls until the first text arrives, so that retries, the breaker
     * and failover apply while nothing has been sent; a failure after the first delta ends the
     * stream with the error.
     */
    const open = (provider: LlmProvider.Provider, request: LlmProvider.Request) =>
      remote(
        provider,
        Effect.gen(function*() {
          const pull = yield* Stream.toPull(provider.stream(request))
          const head: Array<LlmProvider.Chunk> = []
          let ended = false
          while (!ended && !head.some((c) => c._tag === "Text")) {
            const chunk = yield* pull.pipe(
              Effect.map(Chunk.toReadonlyArray),
              Effect.catchAll((e) => Option.isNone(e) ? Effect.as(Effect.sync(() => (ended = true)), []) : Effect.fail(e.value))
            )
            head.push(...chunk)
          }
          const rest = ended ? Stream.empty : Stream.repeatEffectChunkOption(pull)
          return Stream.concat(Stream.fromIterable(head), rest)
        })
      )

    const streamRoute = (request: GenerateRequest, tier: Tier, route: LlmRoutes.Route): Stream.Stream<StreamPart, GenerateError> => {
      if (route.provider === "local") {
        return LocalModel.gateway.stream(new GenerateRequest({ ...request, tier })).pipe(
          Stream.map((part): StreamPart => part._tag === "Done" ? { _tag: "Done", response: new GenerateResponse({ ...part.response, tier }) } : part)
        )
      }
      const provider = options.providers.get(route.provider)
      if (provider === undefined) {
        return Stream.fail(new LlmError({ provider: route.provider, reason: "not_configured", detail: `no ${route.provider} provider is configured` }))
      }
      return Stream.unwrapScoped(Effect.gen(function*() {
        const messages = promptOf(request)
        const maxOutputTokens = yield* budgetFor(request, 0)
        const chunks = yield* open(provider, {
          model: route.model,
          messages,
          maxOutputTokens,
          temperature: request.temperature,
          json: request.outputSchema !== undefined
        })
        const state = yield* Ref.make<StreamState>({ text: "", input: undefined, output: undefined })
        const inputEstimate = LocalModel.estimateTokens(messages.map((m) => m.content).join("\n"))
        const deltas = chunks.pipe(
          Stream.mapError((e) => providerError(provider.name, e)),
          Stream.mapEffect((chunk) =>
            Ref.modify(state, (s): readonly [ReadonlyArray<StreamPart>, StreamState] =>
              chunk._tag === "Text"
                ? [[{ _tag: "Delta", text: chunk.text }], { ...s, text: s.text + chunk.text }]
                : [[], { text: s.text, input: chunk.inputTokens ?? s.input, output: chunk.outputTokens ?? s.output }]
            ).pipe(
              Effect.tap(() =>
                Effect.flatMap(Ref.get(state), (s) => {
                  const needed = inputEstimate + LocalModel.estimateTokens(s.text)
                  return request.tokenBudget !== undefined && needed > request.tokenBudget
                    ? Effect.fail(new TokenBudgetExceeded({ budget: request.tokenBudget, needed }))
                    : Effect.void
                })
              )
            )
          ),
          Stream.flattenIterables
        )
        const done = Effect.gen(function*() {
          const s = yield* Ref.get(state)
          const reported = s.input !== undefined && s.output !== undefined
          const usage = new Usage({
            inputTokens: s.input ?? inputEstimate,
            outputTokens: s.output ?? LocalModel.estimateTokens(s.text),
            reported
          })
          const parsed = request.outputSchema === undefined ? undefined : parseJson(s.text)
          const json = parsed !== undefined && Either.isRight(parsed) ? { json: parsed.right } : {}
          const response = new GenerateResponse({
            text: s.text,
            ...json,
            tier,
            provider: provider.name,
            model: route.model,
            usage,
            costUsd: LlmRoutes.cost(route, usage.inputTokens, usage.outputTokens),
            ...groundingOf(request, s.text),
            cached: false
          })
          yield* count(request.tenantId, tier, provider.name, usage.inputTokens + usage.outputTokens, response.costUsd)
          const checkedResponse = yield* checked(request, response, 0)
          return { _tag: "Done", response: checkedResponse } satisfies StreamPart
        })
        return Stream.concat(deltas, Stream.fromEffect(done))
      }))
    }

    /** A stream on the tier's routes; failover while nothing was sent. Tier `auto` takes the router's tier (no escalation mid-stream). */
    const stream = (request: GenerateRequest): Stream.Stream<StreamPart, GenerateError> =>
      Stream.unwrap(Effect.gen(function*() {
        const tier: Tier = request.tier === "auto"
          ? (yield* decide(request.tenantId, allText(request), request.outputSchema !== undefined, request.context))?.decision.tier ?? "SLM_A"
          : request.tier
        const routes = yield* routesOf(request.tenantId, tier)
        const tryFrom = (index: number): Stream.Stream<StreamPart, GenerateError> => {
          const route = routes[index]
          if (route === undefined) {
            return Stream.fail(new LlmError({ provider: "none", reason: "not_configured", detail: `no route for tier ${tier}` }))
          }
          const sent = { any: false }
          return streamRoute(request, tier, route).pipe(
            Stream.tap(() => Effect.sync(() => (sent.any = true))),
            Stream.catchAll((e) => !sent.any && e._tag === "LlmError" && index + 1 < routes.length ? tryFrom(index + 1) : Stream.fail(e))
          )
        }
        return tryFrom(0)
      }))

    const classify = (request: ClassifyRequest): Effect.Effect<ClassifyResponse, LlmError> =>
      Effect.gen(function*() {
        const tier: Tier = request.tier === "auto"
          ? (yield* decide(request.tenantId, request.text, true, {}))?.decision.tier ?? "SLM_A"
          : request.tier
        const routes = yield* routesOf(request.tenantId, tier)
        if (routes[0]?.provider === "local") return new ClassifyResponse({ ...LocalModel.classify(request), tier })
        const names = request.labels.map((l) => l.name)
        const asked = new GenerateRequest({
          tenantId: request.tenantId,
          tier,
          messages: [
            new LlmMessage({
              role: "system",
              content: "Classify the user's message into exactly one label and give your confidence between 0 and 1.\n" +
                request.labels.map((l) => `- ${l.name}: ${l.description}${l.examples.length === 0 ? "" : ` (e.g. ${l.examples.join("; ")})`}`).join("\n")
            }),
            new LlmMessage({ role: "user", content: request.text })
          ],
          outputSchema: {
            type: "object",
            properties: { label: { type: "string", enum: names }, confidence: { type: "number", minimum: 0, maximum: 1 } },
            required: ["label", "confidence"]
          }
        })
        const answer = yield* onTier(asked, tier).pipe(
          Effect.catchTags({
            OutputInvalid: (e) => Effect.fail(new LlmError({ provider: routes[0]?.provider ?? "none", reason: "bad_response", detail: e.message })),
            TokenBudgetExceeded: (e) => Effect.fail(new LlmError({ provider: routes[0]?.provider ?? "none", reason: "refused", detail: e.message }))
          })
        )
        const verdict = decodeVerdict(answer.json)
        if (Option.isNone(verdict)) {
          return yield* new LlmError({ provider: answer.provider, reason: "bad_response", detail: "the classification is not {label, confidence}" })
        }
        return new ClassifyResponse({ ...verdict.value, tier, usage: answer.usage, costUsd: answer.costUsd })
      })

    return { generate: LlmTokens.publishingWhole(options.tokens, generate), stream, classify }
  })

/** Every tier on the local model; it publishes streamed answers when the context has a `TokenStream`. */
export const layerLocal: Layer.Layer<LlmGateway> = Layer.effect(
  LlmGateway,
  Effect.map(Effect.serviceOption(TokenStream), (tokens) =>
    LlmGateway.of({ ...LocalModel.gateway, generate: LlmTokens.publishingWhole(Option.getOrUndefined(tokens), LocalModel.gateway.generate) }))
)

/** A tenant's route overrides from `llm_tenant_routes`, kept for `ttl` (an unreadable row is logged and skipped). */
export const tenantRoutesFrom = (ttl: Duration.DurationInput) =>
  Effect.gen(function*() {
    const db = yield* Database
    const ttlMs = Duration.toMillis(ttl)
    const known = new Map<string, { readonly routes: Partial<LlmRoutes.TierRoutes>; readonly until: number }>()
    const none: Partial<LlmRoutes.TierRoutes> = {}
    const load = (tenantId: string) =>
      db.tenant(tenantId)(db.sql<{ readonly tier: Tier; readonly routes: string }>`SELECT tier, routes FROM llm_tenant_routes`).pipe(
        Effect.flatMap((rows) =>
          Effect.reduce(rows, none, (acc, row) =>
            Either.match(LlmRoutes.parse(row.routes), {
              onLeft: (why) => Effect.as(Effect.logWarning(`llm_tenant_routes ${row.tier}: ${why}`).pipe(Effect.annotateLogs("tenant_id", tenantId)), acc),
              onRight: (routes) => Effect.succeed({ ...acc, [row.tier]: routes })
            }))
        ),
        Effect.catchAll((error) => Effect.as(Effect.logWarning(`cannot read llm_tenant_routes: ${error.message}`).pipe(Effect.annotateLogs("tenant_id", tenantId)), none))
      )
    return (tenantId: string): Effect.Effect<Partial<LlmRoutes.TierRoutes>> =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const hit = known.get(tenantId)
        if (hit !== undefined && hit.until > now) return hit.routes
        const routes = yield* load(tenantId)
        known.set(tenantId, { routes, until: now + ttlMs })
        return routes
      })
  })

const routesConfig = (name: string) =>
  Config.string(name).pipe(
    Config.withDefault("local"),
    Config.mapOrFail((spec) => Either.mapLeft(LlmRoutes.parse(spec), (why) => ConfigError.InvalidData([name], why)))
  )

/**
 * The gateway's settings from the environment:
 * `LLM_SLM_A`, `LLM_SLM_B`, `LLM_LLM` (routes per tier, default `local`);
 * `OPENAI_BASE_URL` (default https://api.openai.com/v1), `OPENAI_API_KEY` (redacted);
 * `ANTHROPIC_BASE_URL` (default https://api.anthropic.com), `ANTHROPIC_API_KEY` (redacted);
 * `LLM_RETRIES` (3), `LLM_TIMEOUT` (60 seconds), `LLM_BREAKER_FAILURES` (5), `LLM_BREAKER_RESET`
 * (30 seconds), `LLM_MAX_REPAIRS` (2), `LLM_CACHE_TTL` (10 minutes; 0 disables), `REDIS_URL`
 * and `LLM_CACHE_PREFIX` (the cache), `LLM_TENANT_ROUTES_TTL` (1 minute).
 */
export const settings = Config.all({
  SLM_A: routesConfig("LLM_SLM_A"),
  SLM_B: routesConfig("LLM_SLM_B"),
  LLM: routesConfig("LLM_LLM"),
  openAiBaseUrl: Config.string("OPENAI_BASE_URL").pipe(Config.withDefault("https://api.openai.com/v1")),
  openAiKey: Config.option(Config.redacted("OPENAI_API_KEY")),
  anthropicBaseUrl: Config.option(Config.string("ANTHROPIC_BASE_URL")),
  anthropicKey: Config.option(Config.redacted("ANTHROPIC_API_KEY")),
  retries: Config.integer("LLM_RETRIES").pipe(Config.withDefault(defaults.retries)),
  timeout: Config.duration("LLM_TIMEOUT").pipe(Config.withDefault(Duration.decode(defaults.timeout))),
  breakerFailures: Config.integer("LLM_BREAKER_FAILURES").pipe(Config.withDefault(defaults.breaker.failureThreshold)),
  breakerReset: Config.duration("LLM_BREAKER_RESET").pipe(Config.withDefault(Duration.decode(defaults.breaker.resetAfter))),
  maxRepairs: Config.integer("LLM_MAX_REPAIRS").pipe(Config.withDefault(defaults.maxRepairs)),
  cacheTtl: Config.duration("LLM_CACHE_TTL").pipe(Config.withDefault(Duration.decode(defaults.cacheTtl))),
  tenantRoutesTtl: Config.duration("LLM_TENANT_ROUTES_TTL").pipe(Config.withDefault(Duration.minutes(1)))
})

const nonEmpty = (key: Option.Option<Redacted.Redacted<string>>) =>
  Option.getOrUndefined(Option.filter(key, (k) => Redacted.value(k).length > 0))

/** The gateway from `settings`, with the router when one is provided. */
export const fromConfig: Effect.Effect<
  LlmGateway["Type"],
  ConfigError.ConfigError,
  Database | HttpClient.HttpClient | Scope.Scope
> = Effect.gen(function*() {
  const config = yield* settings
  const openai = yield* OpenAiProvider.make({ baseUrl: config.openAiBaseUrl, apiKey: nonEmpty(config.openAiKey) })
  const anthropic = yield* AnthropicProvider.make({ baseUrl: Option.getOrUndefined(config.anthropicBaseUrl), apiKey: nonEmpty(config.anthropicKey) })
  const router = yield* Effect.serviceOption(RouterPort)
  const tokens = yield* Effect.serviceOption(TokenStream)
  return yield* make({
    routes: { SLM_A: config.SLM_A, SLM_B: config.SLM_B, LLM: config.LLM },
    providers: new Map([[openai.name, openai], [anthropic.name, anthropic]]),
    tenantRoutes: yield* tenantRoutesFrom(config.tenantRoutesTtl),
    cache: yield* LlmCache.fromConfig,
    cacheTtl: config.cacheTtl,
    retries: config.retries,
    retryBase: defaults.retryBase,
    retryMax: defaults.retryMax,
    timeout: config.timeout,
    breaker: { failureThreshold: config.breakerFailures, resetAfter: config.breakerReset },
    maxRepairs: config.maxRepairs,
    ...(Option.isSome(router) ? { router: router.value } : {}),
    ...(Option.isSome(tokens) ? { tokens: tokens.value } : {})
  })
})

/**
 * The gateway configured from the environment (see `settings`) with the router for tier `auto`
 * (`Router.layerConfig`, its cost scale taken from the tiers' prices when LLM is priced); needs
 * the database (tenant route overrides, router state).
 */
export const layer: Layer.Layer<LlmGateway | Router.Router | RouterPort, ConfigError.ConfigError, Database> = Layer.unwrapEffect(
  Effect.map(settings, (config) => {
    const routes: LlmRoutes.TierRoutes = { SLM_A: config.SLM_A, SLM_B: config.SLM_B, LLM: config.LLM }
    const costs = { SLM_A: LlmRoutes.typicalCost(routes, "SLM_A", 500), SLM_B: LlmRoutes.typicalCost(routes, "SLM_B", 500), LLM: LlmRoutes.typicalCost(routes, "LLM", 500) }
    return Layer.scoped(LlmGateway, fromConfig).pipe(
      Layer.provideMerge(Router.layerConfig(costs.LLM > 0 ? costs : undefined)),
      Layer.provide(FetchHttpClient.layer)
    )
  })
)
