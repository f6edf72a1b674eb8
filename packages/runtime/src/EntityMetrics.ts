/** Metrics shared by the entity behaviours. */
import * as Metric from "effect/Metric"

/** Incremented each time an entity instance is built: its first message, or after passivation. */
export const activations = (entityType: string): Metric.Metric.Counter<number> =>
  Metric.counter("tessera_entity_activations_total", {
    description: "Entity activations (first message after start or passivation)",
    incremental: true
  }).pipe(Metric.tagged("entity_type", entityType))
