import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { decodeTraceRequest } from "./otlp-protobuf.ts";

/** A span as an OTLP receiver sees it, flattened. */
export interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  /** OTLP SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  attributes: Record<string, string | number | boolean>;
  status: { code?: number; message?: string };
}

export const SpanKindOtlp = { INTERNAL: 1, SERVER: 2, CLIENT: 3, PRODUCER: 4, CONSUMER: 5 } as const;

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  doubleValue?: number;
  boolValue?: boolean;
}
interface OtlpAttribute {
  key: string;
  value: OtlpValue;
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: OtlpAttribute[];
  status?: { code?: number; message?: string };
}
interface OtlpExport {
  resourceSpans?: { resource?: { attributes?: OtlpAttribute[] }; scopeSpans?: { spans?: OtlpSpan[] }[] }[];
}

/** One data point of an exported metric, flattened. Exports are cumulative: later points supersede earlier ones. */
export interface ReceivedMetricPoint {
  service: string;
  /** e.g. `messaging.process.duration`. */
  name: string;
  unit: string;
  kind: "histogram" | "gauge" | "sum";
  attributes: Record<string, string | number | boolean>;
  /** Gauge or sum value. */
  value?: number;
  /** Histogram: number of recordings, their sum, and the counts per bucket (`bounds` are upper bounds). */
  count?: number;
  sum?: number;
  bounds?: number[];
  bucketCounts?: number[];
}

interface OtlpNumberPoint {
  attributes?: OtlpAttribute[];
  asDouble?: number;
  asInt?: string | number;
}
interface OtlpHistogramPoint {
  attributes?: OtlpAttribute[];
  count?: string | number;
  sum?: number;
  explicitBounds?: number[];
  bucketCounts?: (string | number)[];
}
interface OtlpMetric {
  name: string;
  unit?: string;
  gauge?: { dataPoints?: OtlpNumberPoint[] };
  sum?: { dataPoints?: OtlpNumberPoint[] };
  histogram?: { dataPoints?: OtlpHistogramPoint[] };
}
interface OtlpMetricsExport {
  resourceMetrics?: {
    resource?: { attributes?: OtlpAttribute[] };
    scopeMetrics?: { metrics?: OtlpMetric[] }[];
  }[];
}

function metricPoints(service: string, m: OtlpMetric): ReceivedMetricPoint[] {
  const base = { service, name: m.name, unit: m.unit ?? "" };
  const numbers = (kind: "gauge" | "sum", points: OtlpNumberPoint[] | undefined): ReceivedMetricPoint[] =>
    (points ?? []).map((p) => ({
      ...base,
      kind,
      attributes: attributesOf(p.attributes),
      value: p.asDouble ?? Number(p.asInt ?? 0),
    }));
  if (m.gauge) return numbers("gauge", m.gauge.dataPoints);
  if (m.sum) return numbers("sum", m.sum.dataPoints);
  return (m.histogram?.dataPoints ?? []).map((p) => ({
    ...base,
    kind: "histogram",
    attributes: attributesOf(p.attributes),
    count: Number(p.count ?? 0),
    sum: p.sum ?? 0,
    bounds: p.explicitBounds ?? [],
    bucketCounts: (p.bucketCounts ?? []).map(Number),
  }));
}

function attributeValue(v: OtlpValue): string | number | boolean {
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.boolValue !== undefined) return v.boolValue;
  return "";
}

function attributesOf(list: OtlpAttribute[] | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const a of list ?? []) out[a.key] = attributeValue(a.value);
  return out;
}

export interface OtlpReceiver {
  /** Base URL for OTEL_EXPORTER_OTLP_ENDPOINT. */
  readonly endpoint: string;
  readonly spans: ReceivedSpan[];
  /** Resource attributes of every export, per service. */
  readonly resources: Record<string, string | number | boolean>[];
  /** Resolves when `predicate(spans)` holds, rejects after `timeoutMs`. */
  waitFor(predicate: (spans: ReceivedSpan[]) => boolean, timeoutMs?: number): Promise<ReceivedSpan[]>;
  /** Every metric data point received at /v1/metrics (OTLP/JSON), in arrival order. */
  readonly metrics: ReceivedMetricPoint[];
  /**
   * Resolves with the first point (searching newest first) that `predicate` accepts, rejects after
   * `timeoutMs`. Newest first: exports are cumulative, so the latest point of a series is its state.
   */
  waitForMetric(
    predicate: (point: ReceivedMetricPoint) => boolean,
    timeoutMs?: number,
  ): Promise<ReceivedMetricPoint>;
  close(): Promise<void>;
}

/**
 * A real OTLP/HTTP receiver on a free loopback port: spans reach it through the SDK's real exporter,
 * over HTTP, exactly as they would reach a collector in front of Tempo. Traces in either encoding
 * (JSON, or protobuf, the SDK's default); metrics in JSON.
 */
export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const metrics: ReceivedMetricPoint[] = [];
  const resources: Record<string, string | number | boolean>[] = [];
  const waiters = new Set<() => void>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const protobuf = req.headers["content-type"]?.includes("protobuf") ?? false;
      if (protobuf && req.url !== "/v1/traces") {
        res.writeHead(415).end();
        return;
      }
      if (req.method === "POST" && req.url === "/v1/traces") {
        const raw = Buffer.concat(chunks);
        const body = (protobuf ? decodeTraceRequest(raw) : JSON.parse(raw.toString("utf8"))) as OtlpExport;
        for (const rs of body.resourceSpans ?? []) {
          const resource = attributesOf(rs.resource?.attributes);
          resources.push(resource);
          for (const ss of rs.scopeSpans ?? []) {
            for (const s of ss.spans ?? []) {
              spans.push({
                service: String(resource["service.name"]),
                traceId: s.traceId,
                spanId: s.spanId,
                parentSpanId: s.parentSpanId ?? "",
                name: s.name,
                kind: s.kind,
                attributes: attributesOf(s.attributes),
                status: s.status ?? {},
              });
            }
          }
        }
        for (const wake of waiters) wake();
      } else if (req.method === "POST" && req.url === "/v1/metrics") {
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as OtlpMetricsExport;
        for (const rm of body.resourceMetrics ?? []) {
          const service = String(attributesOf(rm.resource?.attributes)["service.name"]);
          for (const sm of rm.scopeMetrics ?? []) {
            for (const m of sm.metrics ?? []) metrics.push(...metricPoints(service, m));
          }
        }
        for (const wake of waiters) wake();
      }
      // An empty Export*ServiceResponse: `{}` in JSON, no bytes at all in protobuf.
      if (protobuf) res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
      else res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    spans,
    resources,
    metrics,
    waitForMetric(predicate, timeoutMs = 10_000) {
      const latest = (): ReceivedMetricPoint | undefined => metrics.findLast(predicate);
      const found = latest();
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const point = latest();
          if (!point) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(point);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          const names = [...new Set(metrics.map((m) => m.name))].join(", ");
          reject(
            new Error(`OTLP receiver: no matching metric point within ${timeoutMs} ms (seen: ${names})`),
          );
        }, timeoutMs);
        waiters.add(check);
      });
    },
    waitFor(predicate, timeoutMs = 10_000) {
      if (predicate(spans)) return Promise.resolve(spans);
      return new Promise((resolve, reject) => {
        const check = (): void => {
          if (!predicate(spans)) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(spans);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(
            new Error(`OTLP receiver: condition not met within ${timeoutMs} ms (${spans.length} spans)`),
          );
        }, timeoutMs);
        waiters.add(check);
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
