import { startNatsCluster as startCluster, type NatsServer } from "@fenceline/bus";

/** Three (or `size`) nats-servers clustered on loopback (see startNatsCluster in @fenceline/bus). */
export async function startNatsCluster(name: string, size = 3, attempts = 3): Promise<NatsServer[]> {
  return (await startCluster(name, { size, attempts })).servers;
}
