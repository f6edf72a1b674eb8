/**
 * The cluster assemblies. Every node keeps shard locks and persisted messages in Postgres
 * (`SqlRunnerStorage`, `SqlMessageStorage`); they differ only in how runners reach each other.
 *
 * - `layerSingle`: one node, no runner server (the embedded default behind `tessera dev`).
 * - `layerSocket`: a runner that serves the cluster protocol on `RUNNER_HOST:RUNNER_PORT` and
 *   pings its peers; several of them on one or many machines form one cluster.
 * - `layerClient`: no shards, only clients: how another process calls the entities.
 *
 * Sharding settings are passed explicitly rather than read by `@effect/cluster` from the
 * environment, whose names (`HOST`, `PORT`, …) would collide with the HTTP server's.
 */
import { RunnerAddress } from "@effect/cluster/RunnerAddress"
import * as RunnerHealth from "@effect/cluster/RunnerHealth"
import * as Runners from "@effect/cluster/Runners"
import * as Sharding from "@effect/cluster/Sharding"
import * as ShardingConfig from "@effect/cluster/ShardingConfig"
import * as SocketRunner from "@effect/cluster/SocketRunner"
import * as SqlMessageStorage from "@effect/cluster/SqlMessageStorage"
import * as SqlRunnerStorage from "@effect/cluster/SqlRunnerStorage"
import { layerClientProtocol, layerSocketServer } from "@effect/platform-node/NodeClusterSocket"
import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SocketServerError } from "@effect/platform/SocketServer"
import * as Config from "effect/Config"
import type { ConfigError } from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"

/**
 * Failover settings: a killed runner's shards are taken over within about `shardLockExpiration`.
 * A message to an entity on this runner is handed over as it is, not serialized and decoded again
 * to simulate a remote runner (the cluster's default, ≈ 7 % of a durable run's CPU in
 * bench:workflows); the tests' TestRunner keeps simulating it, so every message is still checked
 * to survive the wire.
 */
const defaults: Partial<ShardingConfig.ShardingConfig["Type"]> = {
  shardsPerGroup: 300,
  shardLockRefreshInterval: "2 seconds",
  shardLockExpiration: "8 seconds",
  refreshAssignmentsInterval: "1 second",
  runnerHealthCheckInterval: "5 seconds",
  entityMessagePollInterval: "1 second",
  entityReplyPollInterval: "100 millis",
  simulateRemoteSerialization: false
}

const storage = Layer.mergeAll(Layer.orDie(SqlMessageStorage.layer), Layer.orDie(SqlRunnerStorage.layer))

export const layerSingle = (
  config?: Partial<ShardingConfig.ShardingConfig["Type"]>
): Layer.Layer<Sharding.Sharding | Runners.Runners, never, SqlClient.SqlClient> =>
  Sharding.layer.pipe(
    Layer.provideMerge(Runners.layerNoop),
    Layer.provide([storage, RunnerHealth.layerNoop]),
    Layer.provide(ShardingConfig.layer({ ...defaults, ...config }))
  )

export interface SocketOptions {
  /** The address other runners reach this one at. */
  readonly host: string
  readonly port: number
  /** Where to listen, when it differs (e.g. 0.0.0.0 in a container). */
  readonly listenHost?: string | undefined
  readonly sharding?: Partial<ShardingConfig.ShardingConfig["Type"]> | undefined
}

export const layerSocket = (
  options: SocketOptions
): Layer.Layer<Sharding.Sharding | Runners.Runners, SocketServerError, SqlClient.SqlClient> =>
  SocketRunner.layer.pipe(
    Layer.provide([
      layerSocketServer,
      layerClientProtocol,
      RunnerHealth.layerPing.pipe(Layer.provide(Runners.layerRpc), Layer.provide(layerClientProtocol))
    ]),
    Layer.provide(storage),
    Layer.provide(ShardingConfig.layer({
      ...defaults,
      ...options.sharding,
      runnerAddress: Option.some(RunnerAddress.make({ host: options.host, port: options.port })),
      runnerListenAddress: options.listenHost === undefined
        ? Option.none()
        : Option.some(RunnerAddress.make({ host: options.listenHost, port: options.port }))
    })),
    Layer.provide(RpcSerialization.layerMsgPack)
  )

/** `RUNNER_HOST` (default localhost), `RUNNER_PORT` (default 34431), `RUNNER_LISTEN_HOST` (optional). */
export const layerSocketConfig: Layer.Layer<
  Sharding.Sharding | Runners.Runners,
  SocketServerError | ConfigError,
  SqlClient.SqlClient
> = Layer.unwrapEffect(
  Effect.map(
    Config.all({
      host: Config.string("RUNNER_HOST").pipe(Config.withDefault("localhost")),
      port: Config.port("RUNNER_PORT").pipe(Config.withDefault(34431)),
      listenHost: Config.option(Config.string("RUNNER_LISTEN_HOST"))
    }),
    ({ host, listenHost, port }) => layerSocket({ host, port, listenHost: Option.getOrUndefined(listenHost) })
  )
)

export const layerClient: Layer.Layer<Sharding.Sharding | Runners.Runners, never, SqlClient.SqlClient> = SocketRunner
  .layerClientOnly.pipe(
    Layer.provide(layerClientProtocol),
    Layer.provide(storage),
    Layer.provide(ShardingConfig.layer({ ...defaults, runnerAddress: Option.none() })),
    Layer.provide(RpcSerialization.layerMsgPack)
  )
