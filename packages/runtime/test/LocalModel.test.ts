import { assert, describe, it } from "@effect/vitest"
import { ClassifyRequest, GenerateRequest, Label, LlmMessage, Passage } from "@tessera/domain/Llm"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as LocalModel from "../src/LocalModel.js"

const passages = [
  new Passage({
    id: "faq-shipping-001",
    source: "faq.md",
    text: "Standard shipping takes 3 to 5 business days within the EU. Express shipping arrives the next business day if you order before 2 pm."
  }),
  new Passage({
    id: "faq-returns-004",
    source: "faq.md",
    text: "You can return any item within 30 days of delivery. Refunds go back to the original payment method within 5 business days."
  })
]

const ask = (question: string, extra: Partial<{ outputSchema: unknown; tokenBudget: number; passages: ReadonlyArray<Passage> }> = {}) =>
  new GenerateRequest({
    tenantId: "t1",
    tier: "auto",
    messages: [new LlmMessage({ role: "user", content: question })],
    passages: extra.passages ?? passages,
    context: {},
    ...(extra.outputSchema === undefined ? {} : { outputSchema: extra.outputSchema }),
    ...(extra.tokenBudget === undefined ? {} : { tokenBudget: extra.tokenBudget })
  })

const routes = [
  new Label({ name: "faq", description: "general questions about shipping, returns, delivery times", examples: ["how long does shipping take", "what is your return policy"] }),
  new Label({ name: "order", description: "the customer's own orders: status, tracking, cancelling", examples: ["where is my order", "cancel my order"] }),
  new Label({ name: "complaint", description: "the customer is unhappy and wants to complain", examples: ["this is unacceptable", "terrible service"] })
]

describe("LocalModel", () => {
  it.effect("answers from the passage that covers the question and cites it", () =>
    Effect.gen(function*() {
      const shipping = yield* LocalModel.gateway.generate(ask("How many days does express shipping take?"))
      assert.isTrue(shipping.answered)
      assert.deepStrictEqual(shipping.citations, ["faq-shipping-001"])
      assert.include(shipping.text, "Express shipping arrives the next business day")
      assert.strictEqual(shipping.tier, "SLM_A")
      assert.strictEqual(shipping.costUsd, 0)

      const refund = yield* LocalModel.gateway.generate(ask("When will my refund reach my card?"))
      assert.deepStrictEqual(refund.citations, ["faq-returns-004"])
      assert.include(refund.text, "Refunds go back to the original payment method")
    }))

  it.effect("a question spanning two passages is answered from both, citing both", () =>
    Effect.gen(function*() {
      const both = yield* LocalModel.gateway.generate(ask("How many business days does standard shipping take, and how many business days until refunds go back to my payment method?"))
      assert.deepStrictEqual([...both.citations].sort(), ["faq-returns-004", "faq-shipping-001"])
      assert.include(both.text, "Standard shipping takes 3 to 5 business days")
      assert.include(both.text, "Refunds go back to the original payment method")
    }))

  it.effect("says it does not know rather than inventing an answer", () =>
    Effect.gen(function*() {
      const unknown = yield* LocalModel.gateway.generate(ask("Do you sell gift cards for the cinema?"))
      assert.isFalse(unknown.answered)
      assert.deepStrictEqual(unknown.citations, [])
      const nothing = yield* LocalModel.gateway.generate(ask("What is the meaning of life?", { passages: [] }))
      assert.isFalse(nothing.answered)
    }))

  it.effect("classifies intents with a confidence", () =>
    Effect.gen(function*() {
      const classify = (text: string) => LocalModel.gateway.classify(new ClassifyRequest({ tenantId: "t1", tier: "SLM_A", text, labels: [routes[0]!, ...routes.slice(1)] }))
      const order = yield* classify("Where is my order 4411? It has not arrived")
      assert.strictEqual(order.label, "order")
      assert.isAbove(order.confidence, 0.5)
      assert.strictEqual((yield* classify("What's your return policy for shoes?")).label, "faq")
      assert.strictEqual((yield* classify("Your service is terrible and this is unacceptable")).label, "complaint")
    }))

  it.effect("extracts entities into the output schema's properties", () =>
    Effect.gen(function*() {
      const schema = {
        type: "object",
        properties: { name: { type: "string" }, email: { type: "string" }, company: { type: "string" }, amount: { type: "number" }, order_id: { type: "string" } }
      }
      const lead = yield* LocalModel.gateway.generate(
        ask("Hi, my name is Dana Reyes from Northwind Traders, reach me at dana.reyes@northwind.example. Budget about $12,500.", { outputSchema: schema })
      )
      assert.deepStrictEqual(lead.json, { name: "Dana Reyes", email: "dana.reyes@northwind.example", company: "Northwind Traders", amount: 12500 })
      const order = yield* LocalModel.gateway.generate(ask("Where is order #A-10442?", { outputSchema: schema }))
      assert.deepStrictEqual(order.json, { order_id: "A-10442" })
    }))

  it.effect("refuses to spend more tokens than the budget; streams the same answer in order", () =>
    Effect.gen(function*() {
      const refused = yield* LocalModel.gateway.generate(ask("How many days does express shipping take?", { tokenBudget: 5 })).pipe(Effect.flip)
      assert.strictEqual(refused._tag, "TokenBudgetExceeded")
      const parts = yield* Stream.runCollect(LocalModel.gateway.stream(ask("How many days does express shipping take?")))
      const all = [...parts]
      const done = all[all.length - 1]
      assert.strictEqual(done?._tag, "Done")
      const text = all.flatMap((p) => p._tag === "Delta" ? [p.text] : []).join("")
      assert.strictEqual(text, done?._tag === "Done" ? done.response.text : "")
    }))

  it.effect("replies from the run context in the order, lead and complaint flows, and asks for what is missing", () =>
    Effect.gen(function*() {
      const flow = (message: string, context: Record<string, unknown>) =>
        LocalModel.gateway.generate(
          new GenerateRequest({ tenantId: "t1", tier: "SLM_A", messages: [new LlmMessage({ role: "user", content: message })], context })
        )
      const shipped = yield* flow("Where is my parcel?", { workflow: "order_management > track_order", order_id: "A-10442", status: "shipped", tracking_number: "1Z999" })
      assert.isTrue(shipped.answered)
      assert.strictEqual(shipped.text, "Your order A-10442 is shipped. Tracking number: 1Z999.")
      const fromMessage = yield* flow("Status of order #B-2231 please", { flow: "order", status: "out_for_delivery" })
      assert.include(fromMessage.text, "Your order B-2231 is out for delivery")
      const missing = yield* flow("Where is my parcel?", { flow: "order" })
      assert.isFalse(missing.answered)
      assert.include(missing.text, "order number")

      const lead = yield* flow("I'm Dana Reyes, write to dana@northwind.example", { workflow: "lead_capture", company: "Northwind" })
      assert.isTrue(lead.answered)
      assert.include(lead.text, "Thanks Dana Reyes! I have passed your request for Northwind to our sales team; they will reach you at dana@northwind.example")
      const noEmail = yield* flow("We want a demo", { workflow: "lead_capture" })
      assert.isFalse(noEmail.answered)

      const complaint = yield* flow("Order #C-500 arrived broken, this is unacceptable", { workflow: "complaint_handling", ticket_id: "T-77", customer_email: "x@y.example" })
      assert.include(complaint.text, "I'm sorry about this with order C-500. I have logged it as ticket T-77 and we will follow up at x@y.example.")

      const none = yield* flow("Tell me a joke", { workflow: "customer_support" })
      assert.isFalse(none.answered)
    }))
})
