import type { FenceDevicesConfig } from "./config.js";
import { createFenceAgentDevice, type FenceAgentDeviceOptions, type FenceDevice } from "./device.js";

export { FenceDevicesConfig, FenceDeviceConfig, SecretSource, loadFenceDevices, resolveTarget, namedNodes } from "./config.js";
export { createFenceAgentDevice, type FenceDevice, type FenceAgentDeviceOptions } from "./device.js";
export { FenceAgentError, FenceErrorCode, isFenceAgentError, RETRYABLE } from "./errors.js";
export {
  runFenceAgent,
  resolveAgent,
  redact,
  redactionsOf,
  stdinLines,
  type FenceAction,
  type FenceAgentRun,
  type RunFenceAgentOptions,
} from "./run-fence-agent.js";
export { confirmAction, failureOf, gist, powerOf } from "./interpret.js";
export { createSecretReader, type SecretReader, type KubernetesSecretRef } from "./secrets.js";
export { checkFenceDevices, type FenceCheckAnswer } from "./check.js";

/** Every device of a fence devices file, in the file's order. */
export function createFenceDevices(config: FenceDevicesConfig, options: FenceAgentDeviceOptions): FenceDevice[] {
  return Object.entries(config.devices).map(([name, device]) => createFenceAgentDevice(name, device, options));
}
