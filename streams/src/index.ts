export { Subjects, Streams, Buckets, Consumers } from "./subjects.js";
export {
  createDefinitions,
  COMMAND_ACK_WAIT_MS,
  COMMAND_MAX_DELIVER,
  type Definitions,
  type DefinitionOptions,
  type StreamDefinition,
  type ConsumerDefinition,
  type BucketDefinition,
} from "./definitions.js";
export { provisionStreams, type ProvisionOptions, type ProvisionReport, type ProvisionLogger } from "./provision.js";
