/**
 * The demo tenant of `tessera dev`: provisioned through the Tenant entity (idempotent), with an
 * API key that is reused while `.tessera/demo.json` holds a live one. Printed and written to
 * `.tessera/demo.json` as `{ tenantId, apiKey, baseUrl, operatorToken }`. The operator token (see
 * Operator) is generated once and reused from the file; when `TESSERA_OPERATOR_TOKEN` is set that
 * one is used and none is written.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import type { Sharding } from "@effect/cluster/Sharding"
import { TenantId } from "@tessera/domain/Ids"
import { TenantEntity } from "@tessera/domain/TenantEntity"
import * as ApiKeys from "@tessera/runtime/ApiKeys"
import type { Database } from "@tessera/runtime/Database"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Operator from "./Operator.js"

export const tenantId = TenantId.make("demo")

export class DemoFile extends Schema.Class<DemoFile>("DemoFile")({
  tenantId: Schema.String,
  apiKey: Schema.String,
  baseUrl: Schema.String,
  /** The generated operator token; absent when the operator token is configured. */
  operatorToken: Schema.optional(Schema.String)
}) {}

const DemoJson = Schema.parseJson(DemoFile)

export const provision = (options: {
  readonly dir: string
  readonly baseUrl: string
  /** The configured operator token; one is generated (or reused from the file) when none is. */
  readonly operatorToken: Option.Option<Redacted.Redacted<string>>
}) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const file = path.join(options.dir, "demo.json")
    const tenants = yield* TenantEntity.client
    yield* tenants(tenantId).Provision({ name: "Demo Store", plan: "pro" })

    const previous = yield* fs.readFileString(file).pipe(
      Effect.flatMap(Schema.decodeUnknown(DemoJson)),
      Effect.option
    )
    const reusable = Option.isSome(previous) && previous.value.tenantId === tenantId &&
      (yield* ApiKeys.isLive(tenantId, previous.value.apiKey))
    const apiKey = reusable && Option.isSome(previous)
      ? previous.value.apiKey
      : Redacted.value((yield* ApiKeys.create(tenantId, "demo", ["read", "write", "admin"])).plainKey)

    const operatorToken = Option.isSome(options.operatorToken)
      ? undefined
      : Option.isSome(previous) && previous.value.operatorToken !== undefined
      ? previous.value.operatorToken
      : Operator.generate()

    const demo = new DemoFile({ tenantId, apiKey, baseUrl: options.baseUrl, ...(operatorToken === undefined ? {} : { operatorToken }) })
    yield* fs.makeDirectory(options.dir, { recursive: true })
    yield* fs.writeFileString(file, `${yield* Schema.encode(DemoJson)(demo)}\n`, { mode: 0o600 })
    yield* Console.log(
      [
        "",
        "Tessera is running on its embedded defaults.",
        `  base URL  ${demo.baseUrl}`,
        `  tenant    ${demo.tenantId}`,
        `  API key   ${demo.apiKey}`,
        ...(operatorToken === undefined ? [] : [`  operator  ${operatorToken}`]),
        `  (also in ${file})`,
        ""
      ].join("\n")
    )
    return demo
  }).pipe(Effect.withSpan("Demo.provision"))

export type Requirements = Database | Sharding | FileSystem.FileSystem | Path.Path
