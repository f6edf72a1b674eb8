export * as Database from "./Database.js"
export * as Migrations from "./Migrations.js"
export * as TestDatabase from "./TestDatabase.js"
