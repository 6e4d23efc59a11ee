import { randomBytes } from "node:crypto";
import { names } from "@mikrom/contracts";
import type { LogLine } from "@mikrom/testkit";
import {
  createTestNats,
  type OtlpReceiver,
  type ReceivedSpan,
  SpanKindOtlp,
  startOtlpReceiver,
  type TestNats,
} from "@mikrom/testkit";
import { AckPolicy } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Hop, startHop } from "./processes.ts";

/**
 * Three OS processes chained over real JetStream — origin publishes, relay handles and publishes, sink
 * handles — each with the library's real SDK setup, exporting through the real OTLP/HTTP exporter to a
 * receiver this test runs.
 */
interface Chain {
  receiver: OtlpReceiver;
  nats: TestNats;
  ab: string;
  bc: string;
  origin: Hop;
  relay: Hop;
  sink: Hop;
}

async function runChain(traces: number, originEnv: Record<string, string>): Promise<Chain> {
  const receiver = await startOtlpReceiver();
  const nats = await createTestNats(inject("natsUrl"));
  const n = names(nats.namespace);
  const stream = n.streams.events;
  const ab = n.event("hop", "chain", "AtoB");
  const bc = n.event("hop", "chain", "BtoC");
  await nats.jsm.streams.add({ name: stream, subjects: [n.allEvents] });
  await nats.jsm.consumers.add(stream, {
    durable_name: "relay",
    ack_policy: AckPolicy.Explicit,
    filter_subject: ab,
  });
  await nats.jsm.consumers.add(stream, {
    durable_name: "sink",
    ack_policy: AckPolicy.Explicit,
    filter_subject: bc,
  });

  const common = {
    NATS_URL: nats.url,
    STREAM: stream,
    RUN_ID: randomBytes(4).toString("hex"),
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
    OTEL_TRACES_EXPORTER: "otlp",
    OTEL_METRICS_EXPORTER: "none",
    OTEL_BSP_SCHEDULE_DELAY: "200",
    OTEL_TRACE_SAMPLE_RATE: "",
    OTEL_TRACES_SAMPLER: "",
    LOG_LEVEL: "info",
    LOG_FORMAT: "json",
  };
  const relay = startHop("relay", { ...common, CONSUMER: "relay", SUBJECT_OUT: bc });
  const sink = startHop("sink", { ...common, CONSUMER: "sink" });
  const origin = startHop("origin", { ...common, SUBJECT_OUT: ab, TRACES: String(traces), ...originEnv });
  try {
    expect(await origin.exited, origin.stderr.join("\n")).toBe(0);
    await sink.waitForLogs((logs) => handled(logs).length >= traces);
  } finally {
    // SIGTERM: each stops consuming, shuts telemetry down (flushing its spans) and exits.
    const codes = await Promise.all([relay.stop(), sink.stop()]);
    expect(codes, [...relay.stderr, ...sink.stderr].join("\n")).toEqual([0, 0]);
  }
  return { receiver, nats, ab, bc, origin, relay, sink };
}

async function closeChain(chain: Chain | undefined): Promise<void> {
  await chain?.receiver.close();
  await chain?.nats.cleanup();
}

function handled(logs: LogLine[]): LogLine[] {
  return logs.filter((l) => l.message === "Message handled");
}

function byTrace(spans: ReceivedSpan[]): Map<string, ReceivedSpan[]> {
  const traces = new Map<string, ReceivedSpan[]>();
  for (const span of spans) traces.set(span.traceId, [...(traces.get(span.traceId) ?? []), span]);
  return traces;
}

function only(spans: ReceivedSpan[], service: string, name: string): ReceivedSpan {
  const found = spans.filter((s) => s.service === service && s.name === name);
  expect(found, `${service} ${name}`).toHaveLength(1);
  return found[0]!;
}

/** `00-<trace>-<span>-<flags>` and `<trace>-<span>-<sampled>` name the same span with the same decision. */
function expectB3AgreesWithTraceparent(line: LogLine): void {
  const received = line.received as { traceparent: string; b3: string };
  const [, traceId, spanId, flags] = received.traceparent.split("-");
  const [b3Trace, b3Span, b3Sampled] = received.b3.split("-");
  expect(b3Trace).toBe(traceId);
  expect(b3Span).toBe(spanId);
  expect(b3Sampled).toBe(flags === "01" ? "1" : "0");
}

function expectEveryLineValid(chain: Chain): void {
  for (const hop of [chain.origin, chain.relay, chain.sink]) {
    expect(hop.unparsable, `${hop.role} wrote stdout lines that are not log lines`).toEqual([]);
    expect(hop.logs.length).toBeGreaterThan(0);
  }
}

describe("an operation chained through three processes with sampling on", () => {
  const TRACES = 3;
  let chain: Chain | undefined;
  beforeAll(async () => {
    chain = await runChain(TRACES, {});
    await chain.receiver.waitFor((spans) => spans.length >= TRACES * 5);
  }, 60_000);
  afterAll(() => closeChain(chain));

  it("exports every span of one operation under one trace id, each consumer a child of its producer", () => {
    const { receiver, ab, bc } = chain!;
    const traces = byTrace(receiver.spans);
    expect(traces.size).toBe(TRACES);
    for (const spans of traces.values()) {
      expect(new Set(spans.map((s) => s.service))).toEqual(new Set(["hop-origin", "hop-relay", "hop-sink"]));
      const start = only(spans, "hop-origin", "service.origin.start");
      const sendAb = only(spans, "hop-origin", `send ${ab}`);
      const processAb = only(spans, "hop-relay", `process ${ab}`);
      const sendBc = only(spans, "hop-relay", `send ${bc}`);
      const processBc = only(spans, "hop-sink", `process ${bc}`);
      expect(spans).toHaveLength(5);

      expect(start.parentSpanId).toBe("");
      expect(sendAb.parentSpanId).toBe(start.spanId);
      expect(processAb.parentSpanId).toBe(sendAb.spanId);
      expect(sendBc.parentSpanId).toBe(processAb.spanId);
      expect(processBc.parentSpanId).toBe(sendBc.spanId);

      expect([sendAb.kind, sendBc.kind]).toEqual([SpanKindOtlp.PRODUCER, SpanKindOtlp.PRODUCER]);
      expect([processAb.kind, processBc.kind]).toEqual([SpanKindOtlp.CONSUMER, SpanKindOtlp.CONSUMER]);
    }
  });

  it("names and attributes messaging spans by the OpenTelemetry messaging conventions", () => {
    const { receiver, ab } = chain!;
    const send = receiver.spans.find((s) => s.name === `send ${ab}`)!;
    expect(send.attributes).toMatchObject({
      "messaging.system": "nats",
      "messaging.destination.name": ab,
      "messaging.operation.type": "send",
    });
    expect(send.attributes["messaging.message.id"]).toMatch(/-a-\d+$/);
    const processed = receiver.spans.find((s) => s.name === `process ${ab}`)!;
    expect(processed.attributes).toMatchObject({
      "messaging.system": "nats",
      "messaging.destination.name": ab,
      "messaging.operation.type": "process",
      "messaging.consumer.group.name": "relay",
      "messaging.message.id": send.attributes["messaging.message.id"],
      "nats.message.delivery_count": 1,
    });
  });

  it("describes each service in the resource: name, version and instance id", () => {
    const origin = chain!.receiver.resources.find((r) => r["service.name"] === "hop-origin")!;
    expect(origin["service.version"]).toBe("1.2.3");
    expect(origin["service.instance.id"]).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("sends a B3 header that names the same trace, span and decision as traceparent", () => {
    const lines = [...handled(chain!.relay.logs), ...handled(chain!.sink.logs)];
    expect(lines).toHaveLength(TRACES * 2);
    for (const line of lines) expectB3AgreesWithTraceparent(line);
  });

  it("logs in the last process the user and request the first one set, with its own span's ids", () => {
    const { sink, receiver, bc } = chain!;
    const lines = handled(sink.logs);
    expect(lines).toHaveLength(TRACES);
    for (const line of lines) {
      const index = Number(String(line.message_id).split("-").at(-1));
      expect(line).toMatchObject({
        service: "hop-sink",
        logger: "mikrom.test.sink",
        level: "INFO",
        user_id: `user-${index}`,
        user_name: "Ada Lovelace",
      });
      expect(line.request_id).toMatch(new RegExp(`-req-${index}$`));
      const own = receiver.spans.find(
        (s) => s.service === "hop-sink" && s.name === `process ${bc}` && s.spanId === line.span_id,
      );
      expect(own, "the sink's log line carries the span id of its consumer span").toBeDefined();
      expect(line.trace_id).toBe(own!.traceId);
    }
  });

  it("writes nothing but valid JSON log lines on stdout, in every process", () => {
    expectEveryLineValid(chain!);
  });
});

describe("an operation chained through three processes with sampling off at the origin", () => {
  const TRACES = 3;
  let chain: Chain | undefined;
  beforeAll(async () => {
    chain = await runChain(TRACES, { OTEL_TRACE_SAMPLE_RATE: "0" });
  }, 60_000);
  afterAll(() => closeChain(chain));

  it("exports nothing from any process, though the trace context still travels", () => {
    // All three processes have exited after flushing: whatever they were going to export has arrived.
    expect(chain!.receiver.spans).toEqual([]);
    const lines = handled(chain!.sink.logs);
    expect(lines).toHaveLength(TRACES);
    for (const line of lines) {
      expect(line.trace_id).toMatch(/^[0-9a-f]{32}$/);
      expect((line.received as { traceparent: string }).traceparent).toMatch(/-00$/);
      expectB3AgreesWithTraceparent(line);
    }
    expectEveryLineValid(chain!);
  });
});

describe("operations chained through three processes at a sampling ratio of 0.5", () => {
  const TRACES = 40;
  let chain: Chain | undefined;
  beforeAll(async () => {
    chain = await runChain(TRACES, { OTEL_TRACE_SAMPLE_RATE: "0.5" });
  }, 60_000);
  afterAll(() => closeChain(chain));

  it("exports each trace whole from all three processes or not at all", () => {
    const { receiver, sink } = chain!;
    const allTraceIds = new Set(handled(sink.logs).map((l) => String(l.trace_id)));
    expect(allTraceIds.size).toBe(TRACES);
    const exported = byTrace(receiver.spans);
    for (const [traceId, spans] of exported) {
      expect(allTraceIds.has(traceId)).toBe(true);
      expect(spans.map((s) => s.service).sort()).toEqual([
        "hop-origin",
        "hop-origin",
        "hop-relay",
        "hop-relay",
        "hop-sink",
      ]);
    }
    // 40 fair coin flips: all heads or all tails has a probability of 2^-39.
    expect(exported.size).toBeGreaterThan(0);
    expect(exported.size).toBeLessThan(TRACES);
    expectEveryLineValid(chain!);
  });
});
