/**
 * The whole system, end to end, as its users see it: every service its own process (scripts/system.ts)
 * over loopback NATS (a server of the benchmark's own) and PostgreSQL; each client registers, then
 * loops POST /api/v1/vms and GET /api/v1/vms/{id}/wait?status=running. Figures: VMs taken from create
 * to `running` per second, the p50/p99 of create→running as the client sees it, and what each VM cost
 * the machine (bench/costs.ts: CPU per process, NATS messages, commits, spans).
 *
 *   1. fake driver (no boot latency), 64 concurrent clients, for FAKE_SECONDS, with every trace
 *      exported (100 % sampling, OTLP to a receiver in this process);
 *   2. the same with tracing off: the same-run reference for what telemetry costs;
 *   3. qemu driver (real microVMs), 10 VMs at once, when qemu-system-x86_64 is installed.
 *
 * node_modules/.bin/node bench/e2e.bench.ts [clients=64] [fake seconds=10]   [fake-only]
 *
 * Everything it makes goes afterwards: the VMs (deleted through the API; the provisioner also stops
 * what is left on exit), the services' databases, the NATS server, the run folder.
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import pg from "pg";
import { freePort, startPrivateNats } from "../e2e/private-infra.ts";
import { startOtlpReceiver } from "../libs/testkit/src/otlp-receiver.ts";
import { type RunningSystem, startSystem } from "../scripts/system.ts";
import { type CostSources, perVm, type Sample, sample } from "./costs.ts";

const CLIENTS = Number(process.argv[2] ?? 64);
const FAKE_SECONDS = Number(process.argv[3] ?? 10);
const QEMU_VMS = 10;
const QEMU_LIMIT_MS = 90_000;
const serverUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const nats = await startPrivateNats();
const receiver = await startOtlpReceiver();
const admin = new pg.Client({ connectionString: serverUrl });
await admin.connect();

/** Every trace exported, as an operator running Tempo would have it. */
const TRACING_ON = {
  OTEL_TRACES_EXPORTER: "otlp",
  OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
  OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
  OTEL_TRACE_SAMPLE_RATE: "1",
  // Exports a second apart, so that a sample a second after the run has counted its spans.
  OTEL_BSP_SCHEDULE_DELAY: "1000",
};

interface Bench {
  api: string;
  system: RunningSystem;
  problems: string[];
  costs: CostSources;
  close(): Promise<void>;
}

/** One system with its own namespace, databases and run folder; `close` removes all of them. */
async function startBench(key: string, env: Record<string, string>): Promise<Bench> {
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
    },
  });
  const close = async (): Promise<void> => {
    await system.stop();
    await rm(runDir, { recursive: true, force: true });
    await dropDatabases(namespace);
    await deleteStreams(namespace.toUpperCase());
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
    spans: () => receiver.spans.map((span) => `${span.service}: ${span.name}`),
  };
  return { api: system.apiUrl, system, problems, costs, close };
}

async function dropDatabases(prefix: string): Promise<void> {
  const { rows } = await admin.query<{ datname: string }>(
    "SELECT datname FROM pg_database WHERE starts_with(datname, $1)",
    [prefix],
  );
  for (const { datname } of rows) await admin.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
}

async function deleteStreams(prefix: string): Promise<void> {
  const nc = await connect({ servers: nats.url, noAsyncTraces: true, name: "e2e bench cleanup" });
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

async function call(
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

async function userToken(api: string, n: number): Promise<string> {
  const user = { email: `bench-${n}@bench.mikrom`, password: "bench-password-1", name: `Bench ${n}` };
  await call(api, "POST", "/api/v1/auth/register", undefined, user);
  const login = await call(api, "POST", "/api/v1/auth/login/json", undefined, {
    username: user.email,
    password: user.password,
  });
  return login.access_token;
}

/** Runs `fn` over `items` with at most `limit` at once. */
async function inBatches<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
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

interface Run {
  vms: number;
  failed: number;
  seconds: number;
  latenciesMs: number[];
  created: Array<{ token: string; vmId: string }>;
}

/** One VM from POST to `running`, as a client sees it; the latency, or a failure. */
async function createToRunning(api: string, token: string, name: string, run: Run): Promise<void> {
  const started = performance.now();
  try {
    const vm = await call(api, "POST", "/api/v1/vms", token, { name, memory_mb: 128 });
    run.created.push({ token, vmId: vm.vm_id });
    const waited = await call(api, "GET", `/api/v1/vms/${vm.vm_id}/wait?status=running&timeout=120`, token);
    if (!waited.reached) throw new Error(`${vm.vm_id} ended ${waited.vm.status}: ${waited.vm.error_message}`);
    run.latenciesMs.push(performance.now() - started);
    run.vms++;
  } catch (error) {
    run.failed++;
    if (run.failed <= 3) process.stderr.write(`  failure: ${(error as Error).message}\n`);
  }
}

/** `clients` loops, each creating VMs one after another until `seconds` pass (or `perClient` each). */
async function drive(
  api: string,
  tokens: string[],
  opts: { seconds: number; perClient?: number },
): Promise<Run> {
  const run: Run = { vms: 0, failed: 0, seconds: 0, latenciesMs: [], created: [] };
  const started = performance.now();
  const deadline = started + opts.seconds * 1000;
  await Promise.all(
    tokens.map(async (token, client) => {
      for (let i = 0; performance.now() < deadline && i < (opts.perClient ?? Infinity); i++) {
        await createToRunning(api, token, `b${client}-${i}`, run);
      }
    }),
  );
  run.seconds = (performance.now() - started) / 1000;
  return run;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function report(label: string, clients: number, run: Run): string {
  const sorted = [...run.latenciesMs].sort((a, b) => a - b);
  const cells = [
    label.padEnd(22),
    String(clients).padStart(7),
    String(run.vms).padStart(5),
    String(run.failed).padStart(6),
    run.seconds.toFixed(1).padStart(6),
    (run.vms / run.seconds).toFixed(1).padStart(8),
    percentile(sorted, 50).toFixed(0).padStart(8),
    percentile(sorted, 99).toFixed(0).padStart(8),
  ];
  return cells.join(" ");
}

/** Deletes every VM made and waits until each is gone (a real VM is a qemu process). */
async function deleteAll(api: string, created: Array<{ token: string; vmId: string }>): Promise<void> {
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

/** Where the time goes: the median gap between a VM's events (recorded_at), over a sample of VMs. */
async function stepMedians(api: string, sample: Array<{ token: string; vmId: string }>): Promise<string> {
  const gaps = new Map<string, number[]>();
  for (const { token, vmId } of sample) {
    const { events } = await call(api, "GET", `/api/v1/vms/${vmId}/events`, token);
    for (let i = 1; i < events.length; i++) {
      const key = `${events[i - 1].type}→${events[i].type}`;
      const ms = Date.parse(events[i].recorded_at) - Date.parse(events[i - 1].recorded_at);
      gaps.set(key, [...(gaps.get(key) ?? []), ms]);
    }
  }
  return [...gaps]
    .map(
      ([key, values]) =>
        `${key} ${percentile(
          values.sort((a, b) => a - b),
          50,
        ).toFixed(0)} ms`,
    )
    .join(", ");
}

const rows: string[] = [];
const steps: string[] = [];
const costs: string[] = [];
const problems: string[] = [];

/** Statistics reach pg_stat_database and spans their receiver within a second of the work. */
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 1_200));

async function phase(
  label: string,
  env: Record<string, string>,
  clients: number,
  opts: { seconds: number; perClient?: number },
): Promise<Run> {
  const bench = await startBench(env.MIKROM_DRIVER ?? "any", env);
  try {
    const tokens = await inBatches(
      Array.from({ length: clients }, (_, i) => i),
      8,
      (i) => userToken(bench.api, i),
    );
    // One VM first, out of the figures: connections, prepared statements and JIT warm up.
    const warm: Run = { vms: 0, failed: 0, seconds: 0, latenciesMs: [], created: [] };
    await createToRunning(bench.api, tokens[0]!, "warm-up", warm);
    await settle();
    const before: Sample = await sample(bench.costs);
    const run = await drive(bench.api, tokens, opts);
    await settle();
    const after = await sample(bench.costs);
    rows.push(report(label, clients, run));
    costs.push(`${label}:\n  ${perVm(before, after, run.vms, bench.costs).join("\n  ")}`);
    steps.push(`${label}: ${await stepMedians(bench.api, run.created.slice(-20))}`);
    await deleteAll(bench.api, [...warm.created, ...run.created]);
    return run;
  } finally {
    problems.push(...bench.problems);
    await bench.close();
  }
}

const rate = (run: Run): number => run.vms / run.seconds;

try {
  process.stdout.write(
    `${["driver".padEnd(22), "clients", "  VMs", "failed", "     s", "    VMs/s", " p50 ms", " p99 ms"].join(" ")}\n`,
  );
  const fake = { MIKROM_DRIVER: "fake", PROVISIONER_CONCURRENCY: "16" };
  const traced = await phase("fake, traced", { ...fake, ...TRACING_ON }, CLIENTS, { seconds: FAKE_SECONDS });
  process.stdout.write(`${rows.at(-1)}\n`);
  const untraced = await phase("fake, no tracing", fake, CLIENTS, { seconds: FAKE_SECONDS });
  process.stdout.write(`${rows.at(-1)}\n`);
  if (existsSync("/usr/bin/qemu-system-x86_64") && process.argv[4] !== "fake-only") {
    await phase("qemu (10 VMs at once)", { MIKROM_DRIVER: "qemu", PROVISIONER_CONCURRENCY: "10" }, QEMU_VMS, {
      seconds: QEMU_LIMIT_MS / 1000,
      perClient: 1,
    });
    process.stdout.write(`${rows.at(-1)}\n`);
  } else {
    process.stdout.write("qemu: skipped (not installed, or fake-only)\n");
  }
  process.stdout.write(
    "create→running as the client sees it: POST /api/v1/vms, then GET …/wait?status=running (every service a process, loopback)\n",
  );
  process.stdout.write(
    `fake, traced: ${(rate(traced) / 150).toFixed(2)}× the 150 VMs/s target; ${(rate(traced) / rate(untraced)).toFixed(2)}× the same run without tracing\n`,
  );
  process.stdout.write(`what each VM cost:\n${costs.join("\n")}\n`);
  process.stdout.write(`median gaps between a VM's events (last 20 VMs):\n  ${steps.join("\n  ")}\n`);
  if (problems.length > 0) {
    process.stdout.write(
      `${problems.length} ERROR lines from the services; the first:\n${problems.slice(0, 3).join("\n")}\n`,
    );
  }
} finally {
  await admin.end();
  await receiver.close();
  await nats.remove();
}
