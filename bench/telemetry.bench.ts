/**
 * What telemetry costs. Per message: inject + extract alone, and a PRODUCER + CONSUMER span pair (each
 * with its inject/extract) at 100% sampling; per log line, outside and inside a span. Then the
 * throughput of a JetStream publish/handle loop with telemetry off (bare publish, consume, ack) and on
 * (tracePublish/traceHandle around the same calls, SDK at 100% sampling exporting OTLP/protobuf to a
 * sink in another process), alternated in one run. The aim: under 10% throughput lost at 100% sampling.
 *
 * Figures are CPU time of this process (user + system) per operation or message, and wall-clock msg/s
 * for the loop; the loop's third mode carries trace-sized headers without spans, to split what NATS
 * charges for the headers from what the spans and their export cost. Every mode does what a real
 * consumer does anyway (libs/bus reads the delivery count of each message); the traced mode's time
 * includes exporting its last spans, and each mode has a warm-up round.
 *
 * node_modules/.bin/node bench/telemetry.bench.ts   (NATS at NATS_URL or 127.0.0.1:4222)
 * BENCH_TRACES_EXPORTER=none drops spans instead of exporting them; BENCH_OTLP_PROTOCOL=http/json.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import {
  createLogger,
  extractHeaders,
  injectHeaders,
  setLogDestination,
  startTelemetry,
  traceHandle,
  tracePublish,
  withContext,
  withSpan,
} from "@mikrom/telemetry";
import { AckPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, headers, type MsgHdrs } from "@nats-io/transport-node";

const NATS_URL = process.env.NATS_URL ?? "127.0.0.1:4222";
const MICRO_OPS = 20_000;
const LOOP_MESSAGES = 3_000;
const IN_FLIGHT = 64;
const ROUNDS = 5;

const rows: [string, string][] = [];
function report(name: string, value: string): void {
  rows.push([name, value]);
}

/** Lets the event loop run (the span exporter's HTTP requests finish) every this many operations. */
const YIELD_EVERY = 128;
const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * CPU time per operation (user + system of this process), not wall time: on a shared two-core machine
 * the wall clock mostly measures the neighbours. The loop yields now and then, as a service does
 * between messages: without it no export completes, the span queue fills and later spans are dropped
 * unexported, which would make spans look cheaper than they are.
 */
async function nsPerOp(ops: number, fn: () => unknown): Promise<number> {
  for (let i = 0; i < Math.min(5_000, ops); i++) {
    await fn(); // warm-up
    if (i % YIELD_EVERY === 0) await yieldToLoop();
  }
  const start = process.cpuUsage();
  for (let i = 0; i < ops; i++) {
    await fn();
    if (i % YIELD_EVERY === 0) await yieldToLoop();
  }
  const used = process.cpuUsage(start);
  return ((used.user + used.system) * 1000) / ops;
}

/** An OTLP/HTTP endpoint in its own process that accepts and drops everything, like a collector would. */
async function startSink(): Promise<{ endpoint: string; stop(): void }> {
  const child = spawn(
    process.execPath,
    [
      "-e",
      `const s = require("node:http").createServer((q, r) => { q.resume(); q.on("end", () => { r.writeHead(200); r.end(); }); });
       s.listen(0, "127.0.0.1", () => console.log(s.address().port));`,
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const [chunk] = (await once(child.stdout!, "data")) as [Buffer];
  return { endpoint: `http://127.0.0.1:${chunk.toString().trim()}`, stop: () => child.kill() };
}

const sink = await startSink();
process.env.OTEL_EXPORTER_OTLP_ENDPOINT = sink.endpoint;
process.env.OTEL_EXPORTER_OTLP_PROTOCOL = process.env.BENCH_OTLP_PROTOCOL ?? "http/protobuf";
const TRACES_EXPORTER = process.env.BENCH_TRACES_EXPORTER ?? "otlp";
process.env.OTEL_TRACES_EXPORTER = TRACES_EXPORTER;
process.env.OTEL_METRICS_EXPORTER = "none";
process.env.OTEL_TRACE_SAMPLE_RATE = "1";
// Bench lines go nowhere (the figures are formatting and bookkeeping, not the terminal), except the
// SDK's own warnings, which would say if spans were dropped.
const sdkWarnings: string[] = [];
setLogDestination({
  write: (line: string) => {
    if (line.includes('"logger":"opentelemetry"')) sdkWarnings.push(line);
  },
});

const nc = await connect({ servers: NATS_URL, noAsyncTraces: true, name: "telemetry bench" });
const jsm = await jetstreamManager(nc);
const js = jetstream(nc);
const ns = `bench_tel_${randomBytes(4).toString("hex")}`;
const stream = ns.toUpperCase();
const subject = `${ns}.evt.vm.srv-0a0b0c0d.VmRunning`;
await jsm.streams.add({ name: stream, subjects: [`${ns}.>`] });

interface LoopResult {
  rate: number;
  cpuUsPerMsg: number;
}

/** The handler: async, as every real one is, so that both loops await once per message. */
async function handle(): Promise<void> {}

/**
 * - off: bare publish and consume;
 * - headers: the same, carrying headers of the size telemetry adds (static strings), read on receipt
 *   with the delivery count — what NATS itself charges for carrying the context;
 * - on: tracePublish/traceHandle (spans, inject, extract), SDK on.
 */
type Mode = "off" | "headers" | "on";
const STATIC_TRACE_HEADERS: [string, string][] = [
  ["traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"],
  ["b3", "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1"],
  ["baggage", "request.id=r-1234,user.id=u-1"],
];

/**
 * Publishes LOOP_MESSAGES (IN_FLIGHT awaited publishes at a time) and handles them; `finish` (the
 * traced mode's flush of its last spans) is part of the measured time.
 */
async function loop(mode: Mode, round: number, finish?: () => Promise<void>): Promise<LoopResult> {
  const traced = mode === "on";
  const durable = `c${round}${mode}`;
  await jsm.consumers.add(stream, { durable_name: durable, ack_policy: AckPolicy.Explicit });
  await jsm.streams.purge(stream);
  const consumer = await js.consumers.get(stream, durable);
  const messages = await consumer.consume({ max_messages: 512 });
  const start = performance.now();
  const cpu = process.cpuUsage();
  let handled = 0;
  const done = (async () => {
    for await (const m of messages) {
      if (traced) {
        await traceHandle(
          {
            subject: m.subject,
            consumerGroup: durable,
            headers: m.headers,
            deliveryCount: m.info.deliveryCount,
          },
          handle,
        );
      } else {
        // A real consumer reads the delivery count either way (libs/bus: retry or dead-letter).
        if (m.info.deliveryCount < 1) throw new Error("no delivery count");
        if (mode === "headers" && !m.headers?.get("traceparent")) throw new Error("no headers");
        await handle();
      }
      m.ack();
      if (++handled === LOOP_MESSAGES) break;
    }
  })();
  const payload = new TextEncoder().encode('{"vmId":"srv-0a0b0c0d","status":"running"}');
  let next = 0;
  const publishOne = async (): Promise<void> => {
    while (next < LOOP_MESSAGES) {
      const i = next++;
      const h: MsgHdrs = headers();
      if (traced) {
        await withContext({ request_id: `r-${i}`, user_id: "u-1" }, () =>
          tracePublish({ subject, messageId: `${durable}-${i}`, headers: h }, () =>
            js.publish(subject, payload, { headers: h }),
          ),
        );
      } else {
        if (mode === "headers") for (const [k, v] of STATIC_TRACE_HEADERS) h.set(k, v);
        await js.publish(subject, payload, { headers: h });
      }
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, publishOne));
  await done;
  await finish?.();
  const rate = LOOP_MESSAGES / ((performance.now() - start) / 1000);
  const used = process.cpuUsage(cpu);
  await messages.close();
  await jsm.consumers.delete(stream, durable);
  return { rate, cpuUsPerMsg: (used.user + used.system) / LOOP_MESSAGES };
}

try {
  // Micro-benchmarks, SDK on at 100% sampling.
  const telemetry = await startTelemetry({ serviceName: "bench", serviceVersion: "bench" });
  const log = createLogger("mikrom.bench");
  const h = headers();
  await withSpan("bench.parent", {}, async () => injectHeaders(h));

  report(
    "span + inject (traceparent, b3, baggage)",
    `${(await nsPerOp(MICRO_OPS, () => withSpan("x", {}, async () => injectHeaders(headers())))).toFixed(0)} ns/op`,
  );
  report("extract", `${(await nsPerOp(MICRO_OPS, () => extractHeaders(h))).toFixed(0)} ns/op`);
  const spanPair = (): Promise<number> =>
    nsPerOp(MICRO_OPS, async () => {
      const out = headers();
      await tracePublish({ subject, messageId: "m", headers: out }, async () => {});
      await traceHandle(
        { subject, messageId: "m", consumerGroup: "g", headers: out, deliveryCount: 1 },
        async () => {},
      );
    });
  report("producer + consumer spans, inject + extract", `${(await spanPair()).toFixed(0)} ns/msg`);
  report(
    "log line, no span",
    `${(await nsPerOp(MICRO_OPS, () => log.info({ duration_ms: 1.5 }, "VM running"))).toFixed(0)} ns/op`,
  );
  report(
    "log line in a span with context",
    `${(
      await withContext({ request_id: "r", user_id: "u", vm_id: "srv-1" }, () =>
        withSpan("bench.log", {}, () =>
          nsPerOp(MICRO_OPS, () => log.info({ duration_ms: 1.5, attempt: 1 }, "VM running")),
        ),
      )
    ).toFixed(0)} ns/op`,
  );
  await telemetry.shutdown();

  // The same pair with spans recorded but not exported: splits the SDK's span bookkeeping from the
  // OTLP serialization and HTTP that the exporter adds.
  process.env.OTEL_TRACES_EXPORTER = "none";
  const unexported = await startTelemetry({ serviceName: "bench", serviceVersion: "bench" });
  report("producer + consumer spans, not exported", `${(await spanPair()).toFixed(0)} ns/msg`);
  await unexported.shutdown();
  process.env.OTEL_TRACES_EXPORTER = TRACES_EXPORTER;

  // Throughput, alternating the modes so drift on a shared machine hits all of them.
  // Off means no SDK at all (shut down between rounds); on, a fresh SDK each round.
  const results: Record<Mode, LoopResult[]> = { off: [], headers: [], on: [] };
  const traced = async (round: number): Promise<LoopResult> => {
    const sdk = await startTelemetry({ serviceName: "bench", serviceVersion: "bench" });
    try {
      return await loop("on", round, () => sdk.flush());
    } finally {
      await sdk.shutdown();
    }
  };
  // Warm-up rounds, so that no mode pays for compiling its code paths.
  await loop("off", 97);
  await loop("headers", 98);
  await traced(99);
  for (let round = 0; round < ROUNDS; round++) {
    results.off.push(await loop("off", round));
    results.headers.push(await loop("headers", round));
    results.on.push(await traced(round));
  }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const rate = (mode: Mode): number => median(results[mode].map((r) => r.rate));
  const cpu = (mode: Mode): number => median(results[mode].map((r) => r.cpuUsPerMsg));
  const line = (mode: Mode): string =>
    `${rate(mode).toFixed(0)} msg/s, ${cpu(mode).toFixed(1)} µs CPU/msg (runs: ${results[mode]
      .map((r) => r.rate.toFixed(0))
      .join(", ")} msg/s)`;
  report(`loop: telemetry off (${LOOP_MESSAGES} msgs, ${IN_FLIGHT} in flight, medians)`, line("off"));
  report("loop: off, but carrying trace-sized headers", line("headers"));
  report("loop: telemetry on (100% sampled, OTLP/protobuf)", line("on"));
  report(
    "throughput lost to telemetry (on vs off)",
    `${(100 * (1 - rate("on") / rate("off"))).toFixed(1)}% (aim: < 10%)`,
  );
  report(
    "CPU per message added: headers / spans",
    `${(cpu("headers") - cpu("off")).toFixed(1)} µs / ${(cpu("on") - cpu("headers")).toFixed(1)} µs`,
  );
  report("SDK warnings (e.g. dropped spans)", sdkWarnings.length === 0 ? "none" : sdkWarnings.join(" | "));
} finally {
  await jsm.streams.delete(stream).catch(() => false);
  await nc.close();
  sink.stop();
}

const width = Math.max(...rows.map(([name]) => name.length));
for (const [name, value] of rows) process.stdout.write(`${name.padEnd(width)}  ${value}\n`);
