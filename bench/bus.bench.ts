/**
 * libs/bus throughput on loopback, against the NATS at NATS_URL (default 127.0.0.1:4222) in a
 * namespace of its own: traced, validated publishes (serial and 64 in flight) beside bare JetStream
 * publishes, a consumer draining a backlog at concurrency 1 and 16, and query round trips. Spans are
 * made (the SDK runs, exporting nowhere) as in a service. A noisy 2-core box: read the ratios.
 *
 * node_modules/.bin/node bench/bus.bench.ts [seconds per phase]
 */
import { randomBytes } from "node:crypto";
import {
  callQuery,
  connectNats,
  createPublisher,
  declareTopology,
  querySpec,
  serveQuery,
  shutdown,
  startConsumer,
} from "@mikrom/bus";
import { command, names as namesFor, query, Registry } from "@mikrom/contracts";
import { setLogDestination, startTelemetry } from "@mikrom/telemetry";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { z } from "zod";

setLogDestination({ write: () => true });
process.env.OTEL_TRACES_EXPORTER = "none";
process.env.OTEL_METRICS_EXPORTER = "none";
const telemetry = await startTelemetry({ serviceName: "bus-bench" });

const SECONDS = Number(process.argv[2] ?? 2);
const natsUrl = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const namespace = `bench_bus_${randomBytes(4).toString("hex")}`;
const names = namesFor(namespace);
const Work = command("Work", 1, z.object({ n: z.int(), vmId: z.string(), note: z.string() }));
const Echo = query("echo", z.object({ n: z.int() }), z.object({ n: z.int() }));
const data = (n: number) => ({ n, vmId: "srv-0a1b2c3d", note: "a benchmark message of ordinary size" });

const nc = await connectNats({ servers: natsUrl, name: "bus bench" });
const jsm = await jetstreamManager(nc);
const js = jetstream(nc);
const rows: Array<[string, string]> = [];

async function forSeconds(fn: (i: number) => Promise<void>, inFlight = 1): Promise<number> {
  const end = Date.now() + SECONDS * 1_000;
  let count = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (Date.now() < end) await fn(count++);
    }),
  );
  return count / ((performance.now() - start) / 1_000);
}

try {
  await declareTopology(jsm, names, {
    consumers: [1, 16].map((c) => ({
      stream: names.streams.events,
      durable: `bench-c${c}`,
      filterSubject: `${namespace}.evt.bench.c${c}.>`,
    })),
  });
  const publisher = createPublisher(nc);
  const subject = names.command("bench", "work");
  // Commands are a work queue with no consumer here: purge between phases so it does not grow.
  const bare = await forSeconds((i) =>
    js.publish(subject, JSON.stringify(data(i)), { msgID: `bare-${i}` }).then(() => {}),
  );
  rows.push(["bare js.publish, awaited, serial", `${bare.toFixed(0)} msg/s`]);
  await jsm.streams.purge(names.streams.commands);
  const bareParallel = await forSeconds(
    (i) => js.publish(subject, JSON.stringify(data(i)), { msgID: `bare64-${i}` }).then(() => {}),
    64,
  );
  rows.push(["bare js.publish, 64 in flight", `${bareParallel.toFixed(0)} msg/s`]);
  await jsm.streams.purge(names.streams.commands);
  const serial = await forSeconds((i) =>
    publisher.send(Work, subject, data(i), { messageId: `s-${i}` }).then(() => {}),
  );
  rows.push(["publisher.send (zod + span + headers), serial", `${serial.toFixed(0)} msg/s`]);
  await jsm.streams.purge(names.streams.commands);
  const parallel = await forSeconds(
    (i) => publisher.send(Work, subject, data(i), { messageId: `p-${i}` }).then(() => {}),
    64,
  );
  rows.push(["publisher.send, 64 in flight", `${parallel.toFixed(0)} msg/s`]);
  await jsm.streams.purge(names.streams.commands);

  const registry = new Registry([Work]);
  for (const concurrency of [1, 16]) {
    const backlog = Math.round(Math.min(parallel, 5_000) * SECONDS);
    const eventSubject = names.event("bench", `c${concurrency}`, "Work");
    await Promise.all(
      Array.from({ length: 64 }, async (_, lane) => {
        for (let i = lane; i < backlog; i += 64)
          await publisher.send(Work, eventSubject, data(i), { messageId: `e${concurrency}-${i}` });
      }),
    );
    let handled = 0;
    let done!: () => void;
    const drained = new Promise<void>((resolve) => {
      done = resolve;
    });
    const start = performance.now();
    const runner = await startConsumer(nc, {
      names,
      stream: names.streams.events,
      durable: `bench-c${concurrency}`,
      registry,
      concurrency,
      handle: async () => {
        if (++handled === backlog) done();
      },
    });
    await drained;
    const rate = backlog / ((performance.now() - start) / 1_000);
    await runner.stop();
    rows.push([
      `consumer, concurrency ${concurrency} (${backlog} msgs, no-op handler)`,
      `${rate.toFixed(0)} msg/s`,
    ]);
  }

  const spec = querySpec(names, "bench", Echo);
  const server = serveQuery(nc, spec, async (request) => request, { queue: "bench" });
  const latencies: number[] = [];
  const queries = await forSeconds(async (i) => {
    const t0 = performance.now();
    await callQuery(nc, spec, { n: i });
    latencies.push(performance.now() - t0);
  });
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.floor((latencies.length - 1) * p)]?.toFixed(2);
  rows.push([
    "query round trip, serial",
    `${queries.toFixed(0)} q/s (p50 ${pct(0.5)} ms, p99 ${pct(0.99)} ms)`,
  ]);
  await server.stop();
} finally {
  for (const stream of Object.values(names.streams)) await jsm.streams.delete(stream).catch(() => false);
  await shutdown(nc, {});
  await telemetry.shutdown();
}

const width = Math.max(...rows.map(([k]) => k.length));
for (const [k, v] of rows) process.stdout.write(`${k.padEnd(width)}  ${v}\n`);
