export { parse, parseBench, intOption, serverUrl, table, humanOutput, printJson, UsageError, type Options, type Parsed } from "./args.js";
