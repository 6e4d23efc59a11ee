import { createServer } from "node:net";
import { setTimeout as delay } from "node:timers/promises";
import { names } from "@mikrom/contracts";
import { injectHeaders, runInCarrier } from "@mikrom/telemetry";
import type { JetStreamClient } from "@nats-io/jetstream";
import { headers } from "@nats-io/transport-node";
import {
  createEventStore,
  type EventStore,
  type OutboxMessage,
  type Projection,
  type Publish,
} from "../src/index.ts";
import {
  type ReadModel,
  readModelMigrations,
  type TallyEvent,
  tallyEvents,
  tallyRoute,
  tallyUpcasters,
} from "./fixtures/tally.ts";

/** Polls `check` until it returns something other than undefined/false, or fails after the deadline. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ""}`,
      );
    }
    await delay(25);
  }
}

/**
 * The publisher the relay is given in tests (libs/bus provides the production one): JetStream publish
 * with msgID = the message id, inside the trace context stored with the event, headers injected from it.
 */
export function jetStreamPublisher(js: JetStreamClient, options: { timeoutMs?: number } = {}): Publish {
  return (msg: OutboxMessage) =>
    runInCarrier({ ...msg.carrier }, async () => {
      const h = headers();
      for (const [key, value] of Object.entries(msg.headers)) h.set(key, value);
      injectHeaders(h);
      await js.publish(msg.subject, JSON.stringify(msg.data), {
        msgID: msg.messageId,
        headers: h,
        timeout: options.timeoutMs ?? 5000,
      });
    });
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port")),
      );
    });
  });
}

export type TallyStore = EventStore<TallyEvent, ReadModel>;

/** A store of tallies on a test database: the read-model migrations, routing to the namespace's subjects. */
export function openTallyStore(
  url: string,
  options: {
    namespace?: string;
    projections?: readonly Projection<TallyEvent, ReadModel>[];
    poolSize?: number;
    inboxRetentionMs?: number;
  } = {},
): Promise<TallyStore> {
  return createEventStore({
    connectionString: url,
    events: tallyEvents,
    upcasters: tallyUpcasters,
    migrations: readModelMigrations,
    route: tallyRoute(options.namespace ?? "mikrom"),
    refusals: (streamId) => {
      const tallyId = streamId.replace(/^tally-/, "");
      return {
        subject: names(options.namespace ?? "mikrom").event("tally", tallyId, "CommandRejected"),
        entityId: tallyId,
      };
    },
    ...(options.projections && { projections: options.projections }),
    pool: { max: options.poolSize ?? 5 },
    ...(options.inboxRetentionMs !== undefined && { inboxRetentionMs: options.inboxRetentionMs }),
  });
}
