/** The slice of node-postgres (`pg`, a dependency of @effect/sql-pg) the benchmarks use for their raw baselines. */
declare module "pg" {
  export interface PoolConfig {
    readonly connectionString: string
    readonly max: number
  }
  export class Pool {
    constructor(config: PoolConfig)
    query(text: string, values: ReadonlyArray<unknown>): Promise<unknown>
    end(): Promise<void>
  }
  const pg: { readonly Pool: typeof Pool }
  export default pg
}
