/**
 * Event store appends per second, serial and from 64 concurrent streams (each append: the version
 * check, one event and its outbox row), side by side with Emmett (@event-driven-io/emmett-postgresql)
 * appending to the same PostgreSQL in the same run, each in a database of its own (dropped after),
 * both with a pool of the same size. Runs alternate between the two and the best of each is kept: the
 * two cores are shared with other work. Then the 64-stream run again with the outbox relay publishing
 * to JetStream, for the relay's latency from commit to JetStream ack.
 *
 * node_modules/.bin/node bench/eventstore.bench.ts   (DATABASE_URL, NATS_URL or the local servers)
 */
import { randomBytes } from "node:crypto";
import { getPostgreSQLEventStore } from "@event-driven-io/emmett-postgresql";
import { event, names } from "@mikrom/contracts";
import { createEventStore, createRelay, type OutboxMessage } from "@mikrom/eventstore";
import { runInCarrier } from "@mikrom/telemetry";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, headers } from "@nats-io/transport-node";
import { sql } from "kysely";
import pg from "pg";
import { z } from "zod";

const DATABASE_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const NATS_URL = process.env.NATS_URL ?? "127.0.0.1:4222";
const POOL = 16;
const STREAMS = 64;
const SERIAL_MS = 2_000;
const CONCURRENT_MS = 3_000;
const ROUNDS = 2;

const Counted = event("Counted", 1, z.object({ counterId: z.string(), n: z.int(), label: z.string() }));
const data = (counterId: string, n: number) => ({
  counterId,
  n,
  label: "a label of some forty characters or so..",
});

function databaseUrl(name: string): string {
  const url = new URL(DATABASE_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: DATABASE_URL });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Appends as fast as it can for `ms`, from `streams` concurrent writers each owning a stream; appends/s. */
async function rate(
  streams: number,
  ms: number,
  append: (stream: string, version: number) => Promise<void>,
): Promise<number> {
  const run = randomBytes(3).toString("hex");
  let count = 0;
  const end = performance.now() + ms;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: streams }, async (_, w) => {
      const stream = `counter-${run}-${w}`;
      for (let version = 0; performance.now() < end; version++) {
        await append(stream, version);
        count++;
      }
    }),
  );
  return count / ((performance.now() - started) / 1000);
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

const tag = `bench_${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`;
const mikromDb = `${tag}_mikrom`;
const emmettDb = `${tag}_emmett`;
const ns = names(tag);
const nc = await connect({ servers: NATS_URL, noAsyncTraces: true });
const jsm = await jetstreamManager(nc);
const js = jetstream(nc);

await admin(async (c) => {
  await c.query(`CREATE DATABASE "${mikromDb}"`);
  await c.query(`CREATE DATABASE "${emmettDb}"`);
});
const emmettPool = new pg.Pool({ connectionString: databaseUrl(emmettDb), max: POOL });
emmettPool.on("error", () => {});
const store = await createEventStore({
  connectionString: databaseUrl(mikromDb),
  events: [Counted],
  route: (e) => ({ subject: ns.event("counter", e.data.counterId, e.type) }),
  pool: { max: POOL },
});
const emmett = getPostgreSQLEventStore(databaseUrl(emmettDb), { connectionOptions: { pool: emmettPool } });

try {
  await jsm.streams.add({ name: ns.streams.events, subjects: [ns.allEvents] });
  const mikromAppend = async (stream: string, version: number): Promise<void> => {
    await store.append(stream, [{ type: "Counted", data: data(stream, version) }], {
      expectedVersion: version,
    });
  };
  const emmettAppend = async (stream: string, version: number): Promise<void> => {
    await emmett.appendToStream(stream, [{ type: "Counted", data: data(stream, version) }], {
      expectedStreamVersion: BigInt(version),
    });
  };
  await rate(4, 300, mikromAppend); // warm-up, and Emmett creates its schema on first use
  await rate(4, 300, emmettAppend);

  const best = { mikromSerial: 0, emmettSerial: 0, mikrom64: 0, emmett64: 0 };
  for (let round = 0; round < ROUNDS; round++) {
    best.mikromSerial = Math.max(best.mikromSerial, await rate(1, SERIAL_MS, mikromAppend));
    best.emmettSerial = Math.max(best.emmettSerial, await rate(1, SERIAL_MS, emmettAppend));
    best.mikrom64 = Math.max(best.mikrom64, await rate(STREAMS, CONCURRENT_MS, mikromAppend));
    best.emmett64 = Math.max(best.emmett64, await rate(STREAMS, CONCURRENT_MS, emmettAppend));
  }

  // The same load with the relay publishing each outbox row to JetStream.
  await sql`TRUNCATE outbox`.execute(store.db);
  const committedAt = new Map<string, number>();
  const ackedAt = new Map<string, number>();
  const relay = createRelay({
    connectionString: databaseUrl(mikromDb),
    publish: (msg: OutboxMessage) =>
      runInCarrier({ ...msg.carrier }, async () => {
        const h = headers();
        for (const [key, value] of Object.entries(msg.headers)) h.set(key, value);
        await js.publish(msg.subject, JSON.stringify(msg.data), { msgID: msg.messageId, headers: h });
        ackedAt.set(msg.messageId, performance.now());
      }),
  });
  relay.start();
  const withRelay = await rate(STREAMS, CONCURRENT_MS, async (stream, version) => {
    const { events } = await store.append(stream, [{ type: "Counted", data: data(stream, version) }], {
      expectedVersion: version,
    });
    committedAt.set(events[0]!.id, performance.now());
  });
  const drainDeadline = performance.now() + 20_000;
  while ((await store.outboxBacklog()) > 0 && performance.now() < drainDeadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await relay.stop();
  const latencies = [...committedAt]
    .flatMap(([id, at]) => {
      const acked = ackedAt.get(id);
      return acked === undefined ? [] : [Math.max(0, acked - at)];
    })
    .sort((a, b) => a - b);

  const fmt = (n: number): string => Math.round(n).toLocaleString("en-US");
  const out = (line: string): boolean => process.stdout.write(`${line}\n`);
  out(`event store appends (version check + event + outbox row), pool ${POOL}, best of ${ROUNDS} runs`);
  out(`  ${"".padEnd(34)}${"mikrom".padStart(10)}${"emmett".padStart(10)}${"ratio".padStart(8)}`);
  out(
    `  ${"serial, appends/s".padEnd(34)}${fmt(best.mikromSerial).padStart(10)}${fmt(best.emmettSerial).padStart(10)}${`${(best.mikromSerial / best.emmettSerial).toFixed(2)}x`.padStart(8)}`,
  );
  out(
    `  ${`${STREAMS} streams, appends/s`.padEnd(34)}${fmt(best.mikrom64).padStart(10)}${fmt(best.emmett64).padStart(10)}${`${(best.mikrom64 / best.emmett64).toFixed(2)}x`.padStart(8)}`,
  );
  out(
    `  ${`${STREAMS} streams + relay, appends/s`.padEnd(34)}${fmt(withRelay).padStart(10)}${"".padStart(10)}${`${(withRelay / best.emmett64).toFixed(2)}x`.padStart(8)}`,
  );
  out(`  aim: ≥ 1.5x Emmett at ${STREAMS} streams while writing the outbox`);
  out(
    `relay latency, commit → JetStream ack, under the ${STREAMS}-stream load: p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms (${latencies.length} messages, ${relay.stats().published} published)`,
  );
} finally {
  await store.close();
  await emmett.close().catch(() => {});
  await emmettPool.end().catch(() => {});
  await jsm.streams.delete(ns.streams.events).catch(() => false);
  await nc.close();
  await admin(async (c) => {
    await c.query(`DROP DATABASE IF EXISTS "${mikromDb}" WITH (FORCE)`);
    await c.query(`DROP DATABASE IF EXISTS "${emmettDb}" WITH (FORCE)`);
  });
}
