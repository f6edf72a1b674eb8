export * as Cli from "./Cli.js"
export * as Demo from "./Demo.js"
export * as Health from "./Health.js"
export * as Node from "./Node.js"
