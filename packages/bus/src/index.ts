export { createLogger, type Logger } from "./logger.js";
export { connectNats, natsConnectionOptions, redactUrl, type ConnectOptions } from "./connect.js";
export {
  startNatsServer,
  findNatsServerBinary,
  type NatsServer,
  type NatsServerOptions,
  type ClusterOptions,
} from "./nats-server.js";
export { publishEvent, publishCommand, publishAudit, publishDeadLetter, type DeadLetterOptions } from "./publish.js";
export {
  consumeValidated,
  type ConsumeValidatedOptions,
  type ValidatedConsumer,
  type MessageSchema,
  type SchemaOutput,
} from "./consume.js";
