import type { Names } from "@mikrom/contracts";
import { createLogger, type Logger } from "@mikrom/telemetry";
import {
  AckPolicy,
  type ConsumerConfig,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiError,
  type JetStreamManager,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
} from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";

/** One durable pull consumer: one per service and purpose, shared by all replicas of the service. */
export interface ConsumerSpec {
  /** Stream name, e.g. `names.streams.commands`. */
  stream: string;
  /** `<service>-<purpose>`, e.g. `vm-service-commands`. */
  durable: string;
  /** One subject filter (nats-server 2.9 has no multi-filter consumers). */
  filterSubject: string;
  /**
   * How long a delivery may go without an ack or a `working()` before it is redelivered (default 5 s).
   * A running handler holds its delivery with working acks, so this only bounds how long the messages
   * a dead or paused replica held wait: well inside the shortest step deadline that waits on them.
   */
  ackWaitMs?: number;
  /** Deliveries before a message is dead-lettered (default 5); bounded, and more than `backoffMs` has entries. */
  maxDeliver?: number;
  /** Ack wait per delivery instead of `ackWaitMs` (the first entry is the first ack wait); ack timeouts only. */
  backoffMs?: number[];
  /** Unacked messages across all replicas (default 1000). */
  maxAckPending?: number;
  /** Where a new consumer starts (default `all`); fixed once created. */
  deliverPolicy?: "all" | "new";
  description?: string;
}

/** See ConsumerSpec.ackWaitMs. */
export const DEFAULT_ACK_WAIT_MS = 5_000;

export interface TopologyOptions {
  consumers?: readonly ConsumerSpec[];
  /** JetStream drops a repeated `Nats-Msg-Id` within this window (default and minimum 2 min). */
  duplicateWindowMs?: number;
  /** 1 on one server, 3 in a cluster. */
  replicas?: number;
  /** Events and dead letters are kept this long (default: forever). */
  maxAgeMs?: number;
  logger?: Pick<Logger, "info">;
}

export type Change = "created" | "updated" | "unchanged";

export interface TopologyReport {
  streams: Array<{ name: string; change: Change }>;
  consumers: Array<{ stream: string; durable: string; change: Change }>;
}

const MIN_DUPLICATE_WINDOW_MS = 120_000;

/** The three streams of a namespace: commands are work to be done once, events are history, dead letters are evidence. */
export function streamConfigs(
  names: Names,
  options: TopologyOptions = {},
): Array<Partial<StreamConfig> & { name: string }> {
  const duplicateWindowMs = options.duplicateWindowMs ?? MIN_DUPLICATE_WINDOW_MS;
  if (duplicateWindowMs < MIN_DUPLICATE_WINDOW_MS) {
    throw new Error(
      `duplicateWindowMs must be at least ${MIN_DUPLICATE_WINDOW_MS} ms (got ${duplicateWindowMs})`,
    );
  }
  const common = {
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    num_replicas: options.replicas ?? 1,
    duplicate_window: nanos(duplicateWindowMs),
  };
  const kept = { ...common, retention: RetentionPolicy.Limits, max_age: nanos(options.maxAgeMs ?? 0) };
  return [
    {
      ...common,
      name: names.streams.commands,
      subjects: [names.allCommands],
      retention: RetentionPolicy.Workqueue,
    },
    { ...kept, name: names.streams.events, subjects: [names.allEvents] },
    { ...kept, name: names.streams.deadLetters, subjects: [names.allDeadLetters] },
  ];
}

export function consumerConfig(spec: ConsumerSpec): Partial<ConsumerConfig> & { durable_name: string } {
  const maxDeliver = spec.maxDeliver ?? 5;
  const backoff = spec.backoffMs ?? [];
  if (!Number.isInteger(maxDeliver) || maxDeliver < 1) {
    throw new Error(`consumer ${spec.durable}: maxDeliver must be a positive integer (got ${maxDeliver})`);
  }
  if (backoff.length > 0 && maxDeliver <= backoff.length) {
    throw new Error(
      `consumer ${spec.durable}: maxDeliver (${maxDeliver}) must exceed the number of back-off entries (${backoff.length})`,
    );
  }
  if (backoff.length > 0 && spec.ackWaitMs !== undefined && spec.ackWaitMs !== backoff[0]) {
    throw new Error(
      `consumer ${spec.durable}: with backoffMs the first ack wait is backoffMs[0]; ackWaitMs (${spec.ackWaitMs}) disagrees`,
    );
  }
  const ackWaitMs = backoff[0] ?? spec.ackWaitMs ?? DEFAULT_ACK_WAIT_MS;
  return {
    durable_name: spec.durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: spec.deliverPolicy === "new" ? DeliverPolicy.New : DeliverPolicy.All,
    filter_subject: spec.filterSubject,
    ack_wait: nanos(ackWaitMs),
    max_deliver: maxDeliver,
    // The server keeps no back-off as "absent": an empty list would read back as a change on every run.
    backoff: backoff.length > 0 ? backoff.map((ms) => nanos(ms)) : undefined,
    max_ack_pending: spec.maxAckPending ?? 1_000,
    description: spec.description,
  };
}

/** The declared settings that differ from what the server has; empty when nothing needs updating. */
export function differences(desired: object, actual: object): string[] {
  const have = actual as Record<string, unknown>;
  return Object.entries(desired)
    .filter(([key, want]) => key !== "name" && key !== "durable_name" && !same(want, have[key]))
    .map(([key]) => key);
}

function same(want: unknown, have: unknown): boolean {
  const empty = (v: unknown): boolean => v === undefined || v === "" || (Array.isArray(v) && v.length === 0);
  if (empty(want) && empty(have)) return true;
  if (Array.isArray(want) && Array.isArray(have)) {
    return want.length === have.length && want.every((w, i) => same(w, have[i]));
  }
  return want === have;
}

/**
 * Creates or updates the namespace's streams and the given consumers so that they match the
 * declaration. Running it twice changes nothing; a changed setting is updated in place (the server
 * refuses what cannot change, such as a stream's retention, and that error is passed on).
 */
export async function declareTopology(
  jsm: JetStreamManager,
  names: Names,
  options: TopologyOptions = {},
): Promise<TopologyReport> {
  const log = options.logger ?? createLogger("mikrom.bus.topology");
  const report: TopologyReport = { streams: [], consumers: [] };
  for (const config of streamConfigs(names, options)) {
    const change = await ensureStream(jsm, config);
    report.streams.push({ name: config.name, change });
    if (change !== "unchanged") log.info({ stream: config.name, change }, `stream ${change}`);
  }
  for (const spec of options.consumers ?? []) {
    const change = await ensureConsumer(jsm, spec.stream, consumerConfig(spec));
    report.consumers.push({ stream: spec.stream, durable: spec.durable, change });
    if (change !== "unchanged") {
      log.info({ stream: spec.stream, consumer: spec.durable, change }, `consumer ${change}`);
    }
  }
  return report;
}

async function ensureStream(
  jsm: JetStreamManager,
  config: Partial<StreamConfig> & { name: string },
): Promise<Change> {
  const existing = await jsm.streams.info(config.name).catch(notFoundAsNull);
  if (!existing) {
    try {
      await jsm.streams.add(config);
      return "created";
    } catch (error) {
      // Another replica created it between our look and our add: fall through and compare with theirs.
      if (!(await jsm.streams.info(config.name).catch(notFoundAsNull))) throw error;
      return ensureStream(jsm, config);
    }
  }
  const changed = differences(config, existing.config);
  if (changed.length === 0) return "unchanged";
  const { name, ...update } = config;
  await jsm.streams.update(name, update).catch((error: unknown) => {
    throw new Error(`stream ${name}: cannot update ${changed.join(", ")}: ${(error as Error).message}`, {
      cause: error,
    });
  });
  return "updated";
}

async function ensureConsumer(
  jsm: JetStreamManager,
  stream: string,
  config: Partial<ConsumerConfig> & { durable_name: string },
): Promise<Change> {
  const existing = await jsm.consumers.info(stream, config.durable_name).catch(notFoundAsNull);
  if (!existing) {
    try {
      await jsm.consumers.add(stream, config);
      return "created";
    } catch (error) {
      if (!(await jsm.consumers.info(stream, config.durable_name).catch(notFoundAsNull))) throw error;
      return ensureConsumer(jsm, stream, config);
    }
  }
  const changed = differences(config, existing.config);
  if (changed.length === 0) return "unchanged";
  // Settings the server cannot change on a live consumer (deliver_policy) are refused with its own message.
  const { durable_name, ...update } = config;
  await jsm.consumers.update(stream, durable_name, update).catch((error: unknown) => {
    throw new Error(
      `consumer ${durable_name}: cannot update ${changed.join(", ")}: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  });
  return "updated";
}

function notFoundAsNull(error: unknown): null {
  if (error instanceof JetStreamApiError && error.status === 404) return null;
  throw error;
}
