/**
 * LLM gateway assemblies. `layerLocal`: every tier (SLM_A, SLM_B, LLM) on the built-in local
 * model — the embedded default, no network, no configuration.
 */
import * as Layer from "effect/Layer"
import { LlmGateway } from "./LlmGateway.js"
import * as LocalModel from "./LocalModel.js"

export const layerLocal: Layer.Layer<LlmGateway> = Layer.succeed(LlmGateway, LlmGateway.of(LocalModel.gateway))
