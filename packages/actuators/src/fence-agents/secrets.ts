import { readFile } from "node:fs/promises";
import { FenceAgentError, FenceErrorCode } from "./errors.js";
import type { SecretSource } from "./config.js";

export type KubernetesSecretRef = { namespace: string; name: string; key: string };

/** Reads a credential. Read on every use, so a rotated password is picked up without a restart. */
export type SecretReader = (source: SecretSource) => Promise<string>;

/**
 * Files and environment variables are read directly; Kubernetes Secrets through `kubernetes`
 * (the API client of `fenceline up --kubeconfig/--in-cluster`). A trailing line break, which
 * editors and `kubectl create secret --from-file` leave, is not part of the password.
 */
export function createSecretReader(options: { kubernetes?: (ref: KubernetesSecretRef) => Promise<string> } = {}): SecretReader {
  return async (source) => {
    let value: string;
    if ("file" in source) {
      try {
        value = await readFile(source.file, "utf8");
      } catch (err) {
        throw new FenceAgentError(
          FenceErrorCode.InvalidConfig,
          `cannot read the password file ${source.file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        );
      }
    } else if ("env" in source) {
      const found = process.env[source.env];
      if (found === undefined)
        throw new FenceAgentError(FenceErrorCode.InvalidConfig, `environment variable ${source.env} (a fence device password) is not set`);
      value = found;
    } else {
      const ref = source.secret;
      const where = `Secret ${ref.namespace}/${ref.name} key ${ref.key}`;
      if (!options.kubernetes)
        throw new FenceAgentError(FenceErrorCode.InvalidConfig, `${where}: reading a Kubernetes Secret needs --kubeconfig or --in-cluster`);
      try {
        value = await options.kubernetes(ref);
      } catch (err) {
        throw new FenceAgentError(FenceErrorCode.InvalidConfig, `${where}: ${(err as Error).message}`);
      }
    }
    return value.replace(/\r?\n$/, "");
  };
}
