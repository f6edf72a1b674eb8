/** Every entity behaviour a runner hosts, and the run recovery singleton. */
import type { Sharding } from "@effect/cluster/Sharding"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Layer from "effect/Layer"
import type { Database } from "./Database.js"
import type { ToolRegistry } from "./ToolRegistry.js"
import type { WorkflowPlans } from "./WorkflowPlans.js"
import * as RunEntity from "./RunEntity.js"
import * as RunRecovery from "./RunRecovery.js"
import * as SessionEntity from "./SessionEntity.js"
import * as TenantEntity from "./TenantEntity.js"

export const layer: Layer.Layer<
  never,
  never,
  Database | SqlClient.SqlClient | Sharding | ToolRegistry | WorkflowPlans
> = Layer.mergeAll(
  TenantEntity.layer,
  SessionEntity.layer,
  RunEntity.layer,
  RunRecovery.layer
)
