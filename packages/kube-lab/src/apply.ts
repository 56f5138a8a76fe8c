import type { KubeClient, KubeObject } from "./kube-client.js";

type Resource = { plural: string; namespaced: boolean };
type Discovery = { resources: Array<{ name: string; kind: string; namespaced: boolean }> };

const discovered = new Map<string, Promise<Map<string, Resource>>>();

/** The API's own answer to "which resource is kind K in group/version G/V" (discovery, cached per server). */
async function resourcesOf(client: KubeClient, apiVersion: string): Promise<Map<string, Resource>> {
  const key = `${client.access.server} ${apiVersion}`;
  let found = discovered.get(key);
  if (!found) {
    const path = apiVersion.includes("/") ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    found = client.get<Discovery>(path).then((d) => {
      const byKind = new Map<string, Resource>();
      for (const r of d.resources) if (!r.name.includes("/")) byKind.set(r.kind, { plural: r.name, namespaced: r.namespaced });
      return byKind;
    });
    found.catch(() => discovered.delete(key));
    discovered.set(key, found);
  }
  return found;
}

/** The URL path of an object (its collection when `collection`), e.g. /apis/apps/v1/namespaces/ns/deployments/name. */
export async function objectPath(
  client: KubeClient,
  object: Pick<KubeObject, "apiVersion" | "kind" | "metadata">,
  collection = false,
): Promise<string> {
  const { apiVersion, kind } = object;
  if (!apiVersion || !kind) throw new Error(`object ${object.metadata?.name ?? "?"} has no apiVersion or kind`);
  const resource = (await resourcesOf(client, apiVersion)).get(kind);
  if (!resource) throw new Error(`the API server does not serve ${kind} in ${apiVersion}`);
  const base = apiVersion.includes("/") ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  const ns = resource.namespaced ? `/namespaces/${object.metadata.namespace ?? "default"}` : "";
  return `${base}${ns}/${resource.plural}${collection ? "" : `/${object.metadata.name}`}`;
}

/**
 * Server-side apply of one object (`kubectl apply --server-side`), or with `dryRun` only its
 * admission (validation, defaulting, admission plugins) without storing it. Rejections throw
 * a KubeApiError with the server's reason.
 */
export async function applyObject(
  client: KubeClient,
  object: KubeObject,
  options: { fieldManager?: string; dryRun?: boolean } = {},
): Promise<KubeObject> {
  const path = await objectPath(client, object);
  return client.apply(path, object, options.fieldManager ?? "kube-lab", options.dryRun ? { dryRun: "All" } : undefined);
}
