import { connectNats, createLogger, startNatsServer, type NatsServer } from "@fenceline/bus";
import { createCommandProvisioner } from "@fenceline/actuators";
import { parse } from "../args.js";
import { startControlPlane } from "../control-plane.js";
import { createDryRunCluster, createDryRunProvisioner } from "../dry-run.js";
import { loadPolicy } from "../policy-file.js";

const USAGE = `usage: fenceline up [--server nats://host:port] [--policy policy.json] [--store DIR]
                    [--provision-cleanup CMD --provision-run CMD]

Runs the control plane in the foreground: JetStream streams (provisioned idempotently), the
engine, the heartbeat detector, the fleet guard and the actuators. Without --server (or
NATS_URL) it starts its own nats-server on a free loopback port (store in --store, or a
temporary directory). Stop with Ctrl-C.
  --provision-cleanup/--provision-run  shell commands for re-provisioning; {node} and
                                       {hostGroup} are substituted`;

export async function upCommand(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    { server: { type: "string" }, policy: { type: "string" }, store: { type: "string" }, "provision-cleanup": { type: "string" }, "provision-run": { type: "string" } },
    USAGE,
  );
  if (values.help) return (console.log(USAGE), 0);
  const log = createLogger("fenceline");
  const policy = loadPolicy(values.policy as string | undefined);
  let server: NatsServer | undefined;
  let url = (values.server as string | undefined) ?? process.env.NATS_URL;
  if (!url) {
    server = await startNatsServer({ ...(values.store ? { storeDir: values.store as string } : {}), log });
    url = server.url;
    log.info({ url, store: server.storeDir }, "started nats-server");
  }
  const nc = await connectNats(url, { name: "fenceline-up" });
  const cleanup = values["provision-cleanup"] as string | undefined;
  const provision = values["provision-run"] as string | undefined;
  const control = await startControlPlane({
    nc,
    policy,
    log,
    cluster: createDryRunCluster(log),
    provisioner: cleanup && provision ? createCommandProvisioner({ cleanup, provision }) : createDryRunProvisioner(log),
  });
  log.info({ url, policy: policy.version }, "fenceline is up");
  console.error(`fenceline: up on ${url} (Ctrl-C to stop)`);
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  console.error("fenceline: stopping");
  await control.stop();
  await nc.drain();
  await server?.stop();
  return 0;
}
