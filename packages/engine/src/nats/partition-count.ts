import { JetStreamApiCodes, JetStreamApiError, type JetStreamManager } from "@nats-io/jetstream";
import { ErrorCode, FencelineError } from "@fenceline/contracts";
import { Streams, partitionsOfTransform } from "@fenceline/streams";

/**
 * The partition count lives in FL_EVENTS's subject transform (the server places every event with
 * it). An engine with another count would consume the wrong partitions' consumers and fire the
 * wrong nodes' timers, so it refuses to start.
 */
export async function checkEventPartitions(jsm: JetStreamManager, partitions: number): Promise<void> {
  let config;
  try {
    config = (await jsm.streams.info(Streams.events)).config;
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) {
      throw new FencelineError(ErrorCode.NotFound, `stream ${Streams.events} does not exist: provision the streams first`, { cause: err });
    }
    throw err;
  }
  const recorded = partitionsOfTransform(config.subject_transform);
  if (recorded === null) {
    throw new FencelineError(
      ErrorCode.InvalidMessage,
      `stream ${Streams.events} has no partitioning subject transform (created by an older Fenceline?): provision the streams first`,
    );
  }
  if (recorded !== partitions) {
    throw new FencelineError(
      ErrorCode.InvalidMessage,
      `${Streams.events} is split into ${recorded} partitions but this engine uses ${partitions}: set FENCELINE_PARTITIONS=${recorded} (docs/scale.md)`,
    );
  }
}
