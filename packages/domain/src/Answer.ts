/**
 * What a chat workflow answers: the output of its `respond` step, which becomes the run's output
 * and the body of the edge's ChatResponse.
 */
import * as Schema from "effect/Schema"

export class Citation extends Schema.Class<Citation>("Citation")({
  documentId: Schema.String,
  sourceKey: Schema.String,
  title: Schema.String,
  headingPath: Schema.Array(Schema.String)
}) {}

export class Answer extends Schema.Class<Answer>("Answer")({
  answer: Schema.String,
  citations: Schema.Array(Citation),
  /** The tier that produced the answer; null when no model was involved (a tool or template). */
  tier: Schema.NullOr(Schema.String),
  /** True when the run handed the conversation to a human (a ticket was escalated). */
  escalated: Schema.Boolean,
  /** The workflow path taken, e.g. "customer_support > faq_handling". */
  workflow: Schema.String,
  usage: Schema.Struct({ tokens: Schema.Int, costUsd: Schema.Number })
}) {}
