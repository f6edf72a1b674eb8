/**
 * A user's rating of a run's answer (`POST /v1/runs/:id/feedback`): +1 good, −1 bad, with an
 * optional comment. One per run: a second rating replaces the first. The router learns from it
 * for the decisions the run made.
 */
import * as Schema from "effect/Schema"
import { RunId } from "./Ids.js"

export const Rating = Schema.Literal(1, -1)
export type Rating = typeof Rating.Type

export class FeedbackRequest extends Schema.Class<FeedbackRequest>("FeedbackRequest")({
  rating: Rating,
  comment: Schema.optional(Schema.String.pipe(Schema.maxLength(2000)))
}) {}

export class RunFeedback extends Schema.Class<RunFeedback>("RunFeedback")({
  runId: RunId,
  rating: Rating,
  comment: Schema.NullOr(Schema.String),
  updatedAt: Schema.DateTimeUtc
}) {}
