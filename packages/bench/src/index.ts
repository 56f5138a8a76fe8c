export { benchCommand, type BenchContext } from "./command.js";
export { benchReplay, type InterpreterRun } from "./replay-bench.js";
export { benchRecovery } from "./recovery.js";
