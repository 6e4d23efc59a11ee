import {
  type ConsumerRunner,
  type ConsumerSpec,
  connectNats,
  createPublisher,
  declareTopology,
  type Envelope,
  type Publisher,
  type QueryServer,
  shutdown,
  startConsumer,
} from "@mikrom/bus";
import { Header, type MessageDef, type Names, names as namesOf, type Registry } from "@mikrom/contracts";
import { createRelay, type Relay } from "@mikrom/eventstore";
import { createLogger, errorFields, type Logger, runInCarrier } from "@mikrom/telemetry";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { type Kysely, sql } from "kysely";
import { ensureDatabase, serverOf } from "./database.ts";
import { untilAvailable } from "./wait.ts";

/** What every service reads alike (BaseEnv), as its config carries it. */
export interface ServiceConfig {
  readonly natsUrl: string;
  /** The service's own database; created when missing. */
  readonly databaseUrl: string;
  readonly namespace: string;
  readonly streamReplicas: number;
  /** Serve `/health/live` and `/health/ready` on this port (HEALTH_PORT); none when unset. */
  readonly healthPort?: number | undefined;
}

/** The service's store: its database as kysely, and how to close it. An event store fits. */
export interface ServiceStore {
  // biome-ignore lint/suspicious/noExplicitAny: any service's tables; the skeleton only pings it
  readonly db: Kysely<any>;
  close(): Promise<void>;
  /** Outbox rows not yet published: a graceful stop waits (bounded) for the relay to send them. */
  outboxBacklog?(): Promise<number>;
  /** Called after each commit of a write (the relay is nudged by it: see EventStore.onCommit). */
  onCommit?(listener: () => void): void;
}

/** A durable consumer the skeleton declares and runs: its settings and its handler. */
export interface ConsumerDefinition<D extends MessageDef = MessageDef> extends ConsumerSpec {
  readonly registry: Registry<D>;
  readonly handle: (message: Envelope<D>) => Promise<void>;
  /** Messages handled at once by this replica (default 1). */
  readonly concurrency?: number;
}

/** What a service starts of its own; the skeleton runs the consumers and stops everything in order. */
export interface Work {
  readonly consumers?: readonly ConsumerDefinition[];
  readonly queries?: readonly QueryServer[];
  /**
   * Called once the consumers run. Work that judges by what has not arrived (a deadline sweeper)
   * starts here, not in start(): before, it would take answers still waiting in the streams for lost.
   */
  whenConsuming?(): void;
  /** Stops the service's own background work (sweepers, heartbeats, an HTTP server). */
  stop?(): Promise<void>;
}

export interface ServiceContext<C extends ServiceConfig, S extends ServiceStore> {
  readonly config: C;
  readonly names: Names;
  readonly store: S;
  readonly nc: NatsConnection;
  readonly publisher: Publisher;
  readonly log: Logger;
  /** Runs start-up I/O until its dependency answers (see untilAvailable); gives up only at stop. */
  untilAvailable<T>(what: string, attempt: () => Promise<T>): Promise<T>;
}

/**
 * A service as the skeleton runs it: it declares only what is its own. The skeleton connects (waiting
 * for PostgreSQL and NATS as long as they are away), declares the streams and its consumers, relays
 * its outbox, runs its consumers, reports health, and stops in order.
 */
export interface ServiceDefinition<C extends ServiceConfig, S extends ServiceStore, X extends object> {
  readonly name: string;
  /** Opens the store on a database that exists (migrations included). */
  openStore(config: C): Promise<S>;
  /** Relay the store's outbox to JetStream (event-sourced services). */
  readonly outbox?: boolean;
  start(ctx: ServiceContext<C, S>): Promise<Work & X>;
}

export interface RunningService<S extends ServiceStore> {
  readonly names: Names;
  readonly nc: NatsConnection;
  readonly store: S;
  readonly relay: Relay | undefined;
  /** NATS connected and the database answering. */
  ready(): Promise<boolean>;
  /** Stops taking work, finishes what is in flight, publishes what is committed, closes. */
  stop(): Promise<void>;
}

/** How long a graceful stop waits for the relay to publish what is committed. */
const OUTBOX_DRAIN_MS = 5_000;

/**
 * Starts a service in this process. Resolves once it consumes; while PostgreSQL or NATS is away it
 * waits for them rather than failing (`signal` ends the wait). Tests run services through this too.
 */
export async function startService<C extends ServiceConfig, S extends ServiceStore, X extends object>(
  definition: ServiceDefinition<C, S, X>,
  config: C,
  options: { signal?: AbortSignal } = {},
): Promise<RunningService<S> & Omit<X, keyof Work>> {
  const log = createLogger(`mikrom.${definition.name}.main`);
  const wait = <T>(what: string, attempt: () => Promise<T>): Promise<T> =>
    untilAvailable(what, attempt, { log, ...(options.signal ? { signal: options.signal } : {}) });
  const names = namesOf(config.namespace);
  const postgres = `PostgreSQL at ${serverOf(config.databaseUrl)}`;

  const store = await wait(postgres, async () => {
    if ((await ensureDatabase(config.databaseUrl)) === "created") log.info({}, "database created");
    return definition.openStore(config);
  });
  const cleanup: Array<() => Promise<unknown>> = [() => store.close()];
  try {
    const nc = await connectNats({
      servers: config.natsUrl,
      name: `${definition.name} ${process.pid}`,
      waitOnFirstConnect: true,
    });
    cleanup.unshift(() => nc.close());
    const publisher = createPublisher(nc);
    const relay = definition.outbox ? startRelay(config.databaseUrl, publisher, nc) : undefined;
    if (relay) {
      store.onCommit?.(() => relay.nudge());
      cleanup.unshift(() => relay.stop());
    }

    // The streams first: the service may publish as it starts (a host registers itself).
    const declare = (consumers: readonly ConsumerSpec[]) =>
      wait("JetStream", async () =>
        declareTopology(await jetstreamManager(nc), names, { consumers, replicas: config.streamReplicas }),
      );
    await declare([]);
    const ctx: ServiceContext<C, S> = { config, names, store, nc, publisher, log, untilAvailable: wait };
    const work = await definition.start(ctx);
    if (work.stop) cleanup.unshift(() => work.stop!());
    const defs = work.consumers ?? [];
    if (defs.length > 0) await declare(defs);
    const consumers: ConsumerRunner[] = [];
    cleanup.unshift(() => Promise.all(consumers.map((c) => c.stop())));
    for (const def of defs) {
      consumers.push(
        await wait(`consumer ${def.durable}`, () =>
          startConsumer(nc, {
            names,
            stream: def.stream,
            durable: def.durable,
            registry: def.registry,
            handle: def.handle,
            concurrency: def.concurrency ?? 1,
            publisher,
          }),
        ),
      );
    }
    work.whenConsuming?.();
    // Ready means answering: the server knows the query subscriptions before anyone is told we are up.
    await nc.flush().catch(() => {});

    const ready = async (): Promise<boolean> => {
      if (nc.isClosed() || nc.isDraining()) return false;
      try {
        await sql`SELECT 1`.execute(store.db);
        return true;
      } catch {
        return false;
      }
    };
    const { consumers: _c, queries = [], stop: _s, whenConsuming: _w, ...exposed } = work;
    let stopped: Promise<void> | undefined;
    return {
      ...(exposed as Omit<X, keyof Work>),
      names,
      nc,
      store,
      relay,
      ready,
      stop() {
        stopped ??= (async () => {
          // Nothing new is taken; what is in flight finishes and is acknowledged.
          await Promise.all([
            ...consumers.map((c) => c.stop({ timeoutMs: 10_000 })),
            ...queries.map((q) => q.stop()),
            work.stop?.(),
          ]);
          // What is committed is published while NATS is still there, then NATS drains.
          if (relay) {
            await drainOutbox(store, log);
            await relay.stop();
          }
          await shutdown(nc, {});
          await store.close();
        })();
        return stopped;
      },
    };
  } catch (error) {
    for (const close of cleanup) await close().catch(() => {});
    throw error;
  }
}

/**
 * The outbox relay, publishing inside the trace context stored with each message (the trace runs on
 * to the receiver). After NATS comes back it sends again what it sent just before: a server that
 * crashed may have lost messages it had acknowledged (see relay.resendRecent).
 */
function startRelay(databaseUrl: string, publisher: Publisher, nc: NatsConnection): Relay {
  const relay = createRelay({
    connectionString: databaseUrl,
    publish: (m) =>
      runInCarrier({ ...m.carrier }, async () => {
        await publisher.publish(m.subject, JSON.stringify(m.data), {
          msgId: m.messageId,
          // The outbox row's time is its transaction's, which is its events' recorded_at.
          headers: { ...m.headers, [Header.RecordedAt]: m.createdAt.toISOString() },
        });
      }),
  });
  relay.start();
  void (async () => {
    for await (const status of nc.status()) if (status.type === "reconnect") relay.resendRecent();
  })();
  return relay;
}

async function drainOutbox(store: ServiceStore, log: Logger): Promise<void> {
  if (!store.outboxBacklog) return;
  const deadline = Date.now() + OUTBOX_DRAIN_MS;
  try {
    while ((await store.outboxBacklog()) > 0) {
      if (Date.now() > deadline) {
        log.warn({}, "outbox not empty at stop; the rest is published at the next start");
        return;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  } catch (error) {
    log.warn(errorFields(error), "could not read the outbox backlog");
  }
}
