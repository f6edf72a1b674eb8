export * as IngestionWorker from "./IngestionWorker.js"
