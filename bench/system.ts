/**
 * The system the end-to-end benchmarks drive, and their HTTP client: every service its own process
 * (scripts/system.ts) over a nats-server of the benchmark's own and the PostgreSQL server, each run
 * in its own namespace, databases and run folder, all removed afterwards.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import pg from "pg";
import { freePort, type PrivateNats, startPrivateNats } from "../e2e/private-infra.ts";
import { startOtlpReceiver } from "../libs/testkit/src/otlp-receiver.ts";
import { type RunningSystem, type ServiceName, startSystem } from "../scripts/system.ts";
import type { CostSources } from "./costs.ts";

const serverUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

export interface BenchInfra {
  /** Every trace exported to the receiver, as an operator running Tempo would have it. */
  readonly tracingOn: Record<string, string>;
  /** Spans the receiver got, as `service: name`. */
  readonly spans: () => string[];
  /** One system with its own namespace, databases and run folder; its `close` removes all of them. */
  start(key: string, env: Record<string, string>, onLine?: OnLine): Promise<Bench>;
  close(): Promise<void>;
}

export type OnLine = (service: ServiceName, line: string) => void;

export interface Bench {
  api: string;
  system: RunningSystem;
  /** The services' ERROR and FATAL lines. */
  problems: string[];
  costs: CostSources;
  close(): Promise<void>;
}

/**
 * What every end-to-end benchmark runs on: a nats-server of its own (with its monitoring port, for
 * the message counts), an OTLP receiver, and an admin connection to the PostgreSQL server.
 */
export async function openBenchInfra(): Promise<BenchInfra> {
  const nats = await startPrivateNats();
  const receiver = await startOtlpReceiver();
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  return {
    tracingOn: tracingOn(receiver.endpoint),
    spans: () => receiver.spans.map((span) => `${span.service}: ${span.name}`),
    start: (key, env, onLine) => startBench({ nats, admin, spans: () => receiver.spans }, key, env, onLine),
    async close() {
      await admin.end();
      await receiver.close();
      await nats.remove();
    },
  };
}

const tracingOn = (endpoint: string): Record<string, string> => ({
  OTEL_TRACES_EXPORTER: "otlp",
  OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
  OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
  // Spans as deployed services send them (the SDK's default); the receiver reads both encodings.
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "http/protobuf",
  OTEL_TRACE_SAMPLE_RATE: "1",
  // Exports a second apart, so that a sample a second after the run has counted its spans.
  OTEL_BSP_SCHEDULE_DELAY: "1000",
});

interface Infra {
  nats: PrivateNats;
  admin: pg.Client;
  spans: () => Array<{ service: string; name: string }>;
}

async function startBench(
  { nats, admin, spans }: Infra,
  key: string,
  env: Record<string, string>,
  onLine?: OnLine,
): Promise<Bench> {
  const suffix = randomBytes(4).toString("hex");
  const namespace = `bench_e2e_${key}_${suffix}`;
  const base = new URL(serverUrl);
  base.pathname = `/${namespace}`;
  const runDir = await mkdtemp(join(tmpdir(), "mikrom-bench-e2e-"));
  const port = await freePort();
  const problems: string[] = [];
  const system = startSystem({
    env: {
      PORT: String(port),
      NATS_URL: nats.url,
      DATABASE_URL: base.toString(),
      MIKROM_NAMESPACE: namespace,
      MIKROM_HOST_ID: "bench-host",
      MIKROM_RUN_DIR: runDir,
      MIKROM_HOST_VCPUS: "100000",
      MIKROM_HOST_MEMORY_MB: "100000000",
      PROVISIONER_STOP_VMS_ON_EXIT: "true",
      IPPOOL_DEFAULT_CIDR: "10.200.0.0/16",
      MAX_VMS_PER_USER: "100000",
      MAX_VCPUS_PER_USER: "3200000",
      MAX_MEMORY_MB_PER_USER: "3276800000",
      RATE_LIMIT_PER_IP: "10000000",
      RATE_LIMIT_PER_USER: "10000000",
      RATE_LIMIT_AUTH_PER_IP: "10000000",
      JWT_SECRET: "bench-secret-bench-secret-bench-secret",
      HEARTBEAT_INTERVAL_MS: "1000",
      OTEL_TRACES_EXPORTER: "none",
      OTEL_METRICS_EXPORTER: "none",
      OTEL_LOGS_EXPORTER: "none",
      // Warnings and errors only: the figures are the system's, not its log volume's.
      LOG_LEVEL: "warn",
      LOG_FORMAT: "json",
      ...env,
    },
    onLine: (service, line) => {
      if (/"level":"(ERROR|FATAL)"/.test(line)) problems.push(`${service}: ${line}`);
      onLine?.(service, line);
    },
  });
  const close = async (): Promise<void> => {
    await system.stop();
    await rm(runDir, { recursive: true, force: true });
    await dropDatabases(admin, namespace);
    await deleteStreams(nats.url, namespace.toUpperCase());
  };
  try {
    await system.ready(90_000);
  } catch (error) {
    await close();
    throw new Error(`${(error as Error).message}\n${problems.join("\n")}`);
  }
  const costs: CostSources = {
    processes: () =>
      new Map([
        ...[...system.processes].map(([name, proc]) => [name, proc.child.pid!] as const),
        ["nats-server", nats.pid()!] as const,
      ]),
    natsMonitorUrl: nats.monitorUrl,
    admin,
    databasePrefix: namespace,
    spans: () => spans().map((span) => `${span.service}: ${span.name}`),
  };
  return { api: system.apiUrl, system, problems, costs, close };
}

async function dropDatabases(admin: pg.Client, prefix: string): Promise<void> {
  const { rows } = await admin.query<{ datname: string }>(
    "SELECT datname FROM pg_database WHERE starts_with(datname, $1)",
    [prefix],
  );
  for (const { datname } of rows) await admin.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
}

async function deleteStreams(url: string, prefix: string): Promise<void> {
  const nc = await connect({ servers: url, noAsyncTraces: true, name: "e2e bench cleanup" });
  try {
    const jsm = await jetstreamManager(nc);
    const doomed: string[] = [];
    for await (const name of jsm.streams.names())
      if (name.startsWith(prefix) || name.startsWith(`KV_${prefix}`)) doomed.push(name);
    for (const name of doomed) await jsm.streams.delete(name);
  } finally {
    await nc.close();
  }
}

// biome-ignore lint/suspicious/noExplicitAny: response bodies, read field by field
type Json = any;

export async function call(
  api: string,
  method: string,
  path: string,
  token?: string,
  body?: unknown,
): Promise<Json> {
  const res = await fetch(`${api}${path}`, {
    method,
    headers: {
      ...(body !== undefined && { "content-type": "application/json" }),
      ...(token && { authorization: `Bearer ${token}` }),
    },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

export async function userToken(api: string, n: number): Promise<string> {
  const user = { email: `bench-${n}@bench.mikrom`, password: "bench-password-1", name: `Bench ${n}` };
  await call(api, "POST", "/api/v1/auth/register", undefined, user);
  const login = await call(api, "POST", "/api/v1/auth/login/json", undefined, {
    username: user.email,
    password: user.password,
  });
  return login.access_token;
}

/** Runs `fn` over `items` with at most `limit` at once. */
export async function inBatches<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** Deletes every VM made and waits until each is gone (a real VM is a qemu process). */
export async function deleteAll(api: string, created: Array<{ token: string; vmId: string }>): Promise<void> {
  await inBatches(created, 16, async ({ token, vmId }) => {
    await call(api, "DELETE", `/api/v1/vms/${vmId}`, token).catch(() => {});
  });
  const deadline = Date.now() + 60_000;
  for (const { token, vmId } of created) {
    while (Date.now() < deadline) {
      const res = await fetch(`${api}/api/v1/vms/${vmId}`, { headers: { authorization: `Bearer ${token}` } });
      await res.body?.cancel();
      if (res.status === 404) break;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
