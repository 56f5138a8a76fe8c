export { benchCommand, type BenchContext } from "./command.js";
export { benchReplay, type InterpreterRun } from "./replay-bench.js";
export { benchRecovery } from "./recovery.js";
export {
  runRealRecoveryBench,
  kubeAccessOf,
  type RealRecoveryOptions,
  type RealRecoveryResult,
  type CrashOutcome,
  type RealModelSummary,
} from "./recovery-kubernetes.js";
export {
  startKubeLabMachines,
  startKubeLabFenceline,
  type KubeLabWorkloads,
  type KubeLabFenceline,
  type KubeLabFencelineOptions,
} from "./kube-lab-fleet.js";
