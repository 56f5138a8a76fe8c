import { CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { step, type Call } from "./errors.js";
import { createRetrier, type RetryOptions } from "./retry.js";

export type SecretKeyRef = { namespace: string; name: string; key: string };

/**
 * Reads one key of a Secret through the API (for fence device passwords given as
 * `{ "secret": { namespace, name, key } }`). Needs `get` on that Secret: a Role in its namespace,
 * ideally with `resourceNames` listing only the fencing Secrets.
 */
export function createSecretKeyReader(options: {
  kubeConfig: KubeConfig;
  log?: Logger;
  retry?: RetryOptions;
}): (ref: SecretKeyRef) => Promise<string> {
  const core = options.kubeConfig.makeApiClient(CoreV1Api);
  const retry = createRetrier({ ...options.retry, ...(options.log ? { log: options.log } : {}) });
  return async (ref) => {
    const call: Call = { verb: "get", resource: "secrets", group: "", name: ref.name, namespace: ref.namespace };
    const secret = await retry(call, () => step(call, () => core.readNamespacedSecret({ name: ref.name, namespace: ref.namespace })));
    const encoded = secret.data?.[ref.key];
    if (encoded === undefined) {
      const keys = Object.keys(secret.data ?? {});
      throw new Error(
        `Secret ${ref.namespace}/${ref.name} has no key ${ref.key} (it has ${keys.length > 0 ? keys.join(", ") : "no keys"})`,
      );
    }
    return Buffer.from(encoded, "base64").toString("utf8");
  };
}
