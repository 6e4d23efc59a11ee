import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type LogLine,
  type OtlpReceiver,
  parseLogLine,
  startOtlpReceiver,
  withDatabase,
} from "@mikrom/testkit";
import pg from "pg";
import { type RunningSystem, type ServiceName, startSystem } from "../scripts/system.ts";
import { freePort } from "./private-infra.ts";

export const ADMIN = { email: "admin@e2e.mikrom", password: "admin-password-1" };

export interface Line {
  service: ServiceName;
  entry: LogLine;
  /** The line as the service wrote it (what a log pipeline and Grafana's derived fields see). */
  raw: string;
}

export interface E2eSystem {
  readonly system: RunningSystem;
  readonly api: string;
  readonly otlp: OtlpReceiver;
  /** Every log line of every service, each checked as a valid Mikrom log line as it arrived. */
  readonly lines: Line[];
  /** Lines that were not valid JSON log lines (must stay empty), with the service and the reason. */
  readonly invalid: string[];
  /** What any service wrote to stderr (Node warnings, crashes). */
  readonly stderr: string[];
  readonly runDir: string;
  close(): Promise<void>;
}

/**
 * Mikrom as a user runs it: every service its own process, against the test's own NATS namespace
 * and databases derived from the test's database, exporting spans to a real OTLP/HTTP receiver.
 */
export async function startE2eSystem(opts: {
  natsUrl: string;
  databaseUrl: string;
  namespace: string;
  env?: Record<string, string>;
  /** Variables for one service only (e.g. `{ audit: { LOG_LEVEL: "debug" } }`). */
  serviceEnv?: Partial<Record<ServiceName, Record<string, string>>>;
}): Promise<E2eSystem> {
  const otlp = await startOtlpReceiver();
  const runDir = await mkdtemp(join(tmpdir(), "mikrom-e2e-"));
  const lines: Line[] = [];
  const invalid: string[] = [];
  const stderr: string[] = [];
  const port = await freePort();
  const system = startSystem({
    env: {
      PORT: String(port),
      NATS_URL: opts.natsUrl,
      DATABASE_URL: opts.databaseUrl,
      MIKROM_NAMESPACE: opts.namespace,
      MIKROM_HOST_ID: "e2e-host",
      MIKROM_RUN_DIR: runDir,
      MIKROM_ADMIN_EMAIL: ADMIN.email,
      MIKROM_ADMIN_PASSWORD: ADMIN.password,
      JWT_SECRET: "e2e-secret-e2e-secret-e2e-secret-e2e",
      HEARTBEAT_INTERVAL_MS: "1000",
      OTEL_TRACES_SAMPLER: "always_on",
      OTEL_EXPORTER_OTLP_ENDPOINT: otlp.endpoint,
      // Spans in the SDK's default encoding, protobuf, as deployed services send them.
      OTEL_BSP_SCHEDULE_DELAY: "200",
      OTEL_METRICS_EXPORTER: "none",
      LOG_LEVEL: "info",
      LOG_FORMAT: "json",
      ...opts.env,
    },
    ...(opts.serviceEnv && { serviceEnv: opts.serviceEnv }),
    onLine(service, line, stream) {
      if (stream === "stderr") {
        stderr.push(`${service}: ${line}`);
        return;
      }
      try {
        lines.push({ service, entry: parseLogLine(line), raw: line });
      } catch (error) {
        invalid.push(`${service}: ${line} -> ${(error as Error).message}`);
      }
    },
  });
  const api = system.apiUrl;
  try {
    await system.ready(180_000);
  } catch (error) {
    await system.stop(2_000);
    await otlp.close();
    throw new Error(`${(error as Error).message}\n${stderr.slice(-20).join("\n")}`);
  }
  return {
    system,
    api,
    otlp,
    lines,
    invalid,
    stderr,
    runDir,
    async close() {
      await system.stop();
      await otlp.close();
      await rm(runDir, { recursive: true, force: true });
      await dropDerivedDatabases(opts.databaseUrl);
    },
  };
}

/** The services' own databases (`<base>_vm`, …) go with the test's. */
async function dropDerivedDatabases(baseUrl: string): Promise<void> {
  const base = decodeURIComponent(new URL(baseUrl).pathname.slice(1));
  const admin = new pg.Client({ connectionString: withDatabase(baseUrl, "postgres") });
  await admin.connect();
  try {
    const { rows } = await admin.query<{ datname: string }>(
      "SELECT datname FROM pg_database WHERE starts_with(datname, $1)",
      [`${base}_`],
    );
    for (const { datname } of rows) await admin.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}

// biome-ignore lint/suspicious/noExplicitAny: response bodies of every route; the tests assert their shape
type Json = any;

export interface Client {
  readonly token: string;
  call(method: string, path: string, body?: unknown): Promise<Reply>;
}

export interface Reply {
  status: number;
  body: Json;
  headers: Headers;
}

/** Registers (when asked) and logs in over the REST API, as a user's script would. */
export async function login(
  api: string,
  user: { email: string; password: string },
  register = false,
): Promise<Client> {
  const send = async (method: string, path: string, body?: unknown, token?: string): Promise<Reply> => {
    const res = await fetch(`${api}${path}`, {
      method,
      headers: {
        ...(body !== undefined && { "content-type": "application/json" }),
        ...(token && { authorization: `Bearer ${token}` }),
      },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
  };
  if (register) {
    const created = await send("POST", "/api/v1/auth/register", { ...user, name: "E2E User" });
    if (created.status !== 201)
      throw new Error(`register: ${created.status} ${JSON.stringify(created.body)}`);
  }
  const res = await send("POST", "/api/v1/auth/login/json", {
    username: user.email,
    password: user.password,
  });
  if (res.status !== 200) throw new Error(`login: ${res.status} ${JSON.stringify(res.body)}`);
  const token = res.body.access_token as string;
  return { token, call: (method, path, body) => send(method, path, body, token) };
}

/** Waits (through the API's own wait route) until the VM reaches `status`. */
export async function waitFor(client: Client, vmId: string, status: string, timeoutS = 90): Promise<Json> {
  const res = await client.call("GET", `/api/v1/vms/${vmId}/wait?status=${status}&timeout=${timeoutS}`);
  if (res.status !== 200) throw new Error(`wait ${status}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

/** Polls `fn` until `ok` holds for its value, or throws at the deadline naming what was awaited. */
export async function until<T>(
  what: string,
  fn: () => Promise<T>,
  ok: (v: T) => boolean,
  ms = 30_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await fn();
    if (ok(value)) return value;
    if (Date.now() > deadline)
      throw new Error(`${what}: not seen within ${ms} ms (last: ${JSON.stringify(value)})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Addresses allocated in a pool, from the admin's `GET /ippools/stats` (-1 when the pool is unknown). */
export async function poolAllocated(admin: Client, pool = "default"): Promise<number> {
  const res = await admin.call("GET", "/api/v1/ippools/stats");
  const stats = (res.body.pools as Array<{ name: string; allocated: number }>).find((p) => p.name === pool);
  return stats?.allocated ?? -1;
}

/** The trace of `POST /api/v1/vms` that created the VM: the gateway's log line of that request names both. */
export function traceOfCreate(e2e: E2eSystem, vmId: string): string {
  const line = e2e.lines.find(
    (l) => l.service === "api-gateway" && l.entry.vm_id === vmId && typeof l.entry.trace_id === "string",
  );
  if (!line) throw new Error(`the gateway logged nothing for the create request of ${vmId}`);
  return line.entry.trace_id as string;
}

/** WARN and ERROR lines a service wrote about a VM (from line `from` on). */
export function problemsOf(e2e: E2eSystem, service: ServiceName, vmId: string, from = 0): LogLine[] {
  return e2e.lines
    .slice(from)
    .filter(
      (l) =>
        l.service === service &&
        l.entry.vm_id === vmId &&
        (l.entry.level === "WARN" || l.entry.level === "ERROR"),
    )
    .map((l) => l.entry);
}
