export { type ConnectOptions, connectNats, credentialsFromUrls } from "./connection.ts";
export { type ConsumerOptions, type ConsumerRunner, startConsumer } from "./consumer.ts";
export { type DeadLetter, deadLetterId, publishDeadLetter } from "./dead-letter.ts";
export { decode, type Envelope, type Received } from "./envelope.ts";
export { PermanentFailure } from "./errors.ts";
export { copyHeaders, DeadLetterHeader, type HeadersInit } from "./headers.ts";
export {
  announce,
  causedBy,
  createPublisher,
  type MessageMeta,
  type Publisher,
  type PublishOptions,
  type Sent,
} from "./publisher.ts";
export { callQuery, QueryFailed, type QueryServer, type QuerySpec, querySpec, serveQuery } from "./query.ts";
export { queued } from "./queued.ts";
export { DEFAULT_RETRY_DELAYS_MS, nakDelayMs, pause } from "./retry.ts";
export { shutdown } from "./shutdown.ts";
export {
  type Change,
  type ConsumerSpec,
  consumerConfig,
  declareTopology,
  streamConfigs,
  type TopologyOptions,
  type TopologyReport,
} from "./topology.ts";
export { isStoreUnreachable, isTransient, isUnavailable } from "./unavailable.ts";
