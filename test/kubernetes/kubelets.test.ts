import { describe, expect, it } from "vitest";
import {
  createDeployment,
  createNamespace,
  createStatefulSet,
  CSI_DRIVER,
  deleteNamespace,
  isRunningAndReady,
  type KubeApiError,
  KubeletFleet,
  listPods,
} from "@fenceline/kube-lab";
import { kubeAdmin, sleep, waitUntil } from "./harness.js";

/** The simulated kubelets and CSI attacher (kube-lab's KubeletFleet) against the real control plane. */
describe("simulated kubelets on the real API server", () => {
  it("register Ready nodes with Leases and CSINodes, run what the scheduler binds, attach CSI volumes; a cut-off machine keeps its containers while the API hears nothing", async () => {
    const admin = kubeAdmin();
    const name = "kubelets";
    await createNamespace(admin, name);
    const machines = new KubeletFleet({ admin, nodes: [`${name}-1`, `${name}-2`, `${name}-3`], fleet: name, leaseRenewMs: 1_000 });
    try {
      await machines.start();
      await createStatefulSet(admin, { namespace: name, name: "db", replicas: 2, fleet: name });
      await createDeployment(admin, { namespace: name, name: "web", replicas: 1, fleet: name });
      await waitUntil(
        "three pods running and ready",
        async () => {
          const pods = await listPods(admin, name);
          return pods.length === 3 && pods.every(isRunningAndReady);
        },
        90_000,
      );

      const node = await admin.get(`/api/v1/nodes/${name}-1`);
      expect(node.status.conditions.find((c: { type: string }) => c.type === "Ready").status).toBe("True");
      expect(node.status.nodeInfo.bootID).toBe(`${name}-1-boot-1`);
      expect(node.metadata.annotations?.["volumes.kubernetes.io/controller-managed-attach-detach"]).toBe("true");
      expect((await admin.get(`/apis/storage.k8s.io/v1/csinodes/${name}-1`)).spec.drivers[0].name).toBe(CSI_DRIVER);

      // The scheduler bound db-0; the attach-detach controller made a VolumeAttachment; the attacher attached it.
      const db0 = await admin.get(`/api/v1/namespaces/${name}/pods/db-0`);
      const host = db0.spec.nodeName as string;
      const vas = (await admin.list("/apis/storage.k8s.io/v1/volumeattachments")).items.filter(
        (v) => v.spec.source.persistentVolumeName === `${name}-db-0`,
      );
      expect(vas.map((v) => [v.spec.nodeName, v.status.attached])).toEqual([[host, true]]);
      expect((await admin.get(`/api/v1/nodes/${host}`)).status.volumesInUse).toContain(`kubernetes.io/csi/${CSI_DRIVER}^${name}-db-0`);
      expect(machines.containers().find((c) => c.pod === `${name}/db-0`)).toMatchObject({ node: host, volume: `${name}-db-0` });

      // Each kubelet acts as its node: the Node authorizer refuses it another node's status.
      const other = [`${name}-1`, `${name}-2`, `${name}-3`].find((n) => n !== host)!;
      const denied = await admin
        .as({ user: `system:node:${host}`, groups: ["system:nodes"] })
        .patch(`/api/v1/nodes/${other}/status`, { status: {} }, { strategic: true })
        .catch((e: unknown) => e);
      expect((denied as KubeApiError).status).toBe(403);

      // Cut off: the Lease stops, the containers run on; a graceful delete stays unfinished.
      const lease = async () =>
        new Date((await admin.get(`/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${host}`)).spec.renewTime).getTime();
      const renewed = await lease();
      await waitUntil("a lease renewal", async () => (await lease()) > renewed, 10_000);
      machines.setReachable(host, false);
      await sleep(1_500);
      const frozen = await lease();
      await admin.delete(`/api/v1/namespaces/${name}/pods/db-0`);
      await sleep(3_000);
      expect(await lease()).toBe(frozen);
      expect((await admin.get(`/api/v1/namespaces/${name}/pods/db-0`)).metadata.deletionTimestamp).toBeDefined();
      expect(machines.containers().some((c) => c.pod === `${name}/db-0` && c.node === host)).toBe(true);
      // Back: it finishes the delete (stops the container, deletes the object); the replica is re-created.
      machines.setReachable(host, true);
      await waitUntil(
        "db-0 replaced and running",
        async () => {
          const pod = await admin.find(`/api/v1/namespaces/${name}/pods/db-0`);
          return pod !== null && pod.metadata.uid !== db0.metadata.uid && isRunningAndReady(pod);
        },
        60_000,
      );
      expect(machines.containers().filter((c) => c.pod === `${name}/db-0`)).toHaveLength(1);
      expect(await lease()).toBeGreaterThan(frozen);

      // Crashed: its containers stop at once, its kubelet falls silent.
      const web = (await listPods(admin, name, "web"))[0]!;
      machines.crash(web.spec.nodeName);
      expect(machines.containers().filter((c) => c.node === web.spec.nodeName)).toEqual([]);
    } finally {
      await machines.stop({ deleteNodes: true });
      await deleteNamespace(admin, name, name);
    }
  }, 180_000);
});
