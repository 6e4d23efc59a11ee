/**
 * One chaos run: private PostgreSQL and NATS, every service as a supervised process, random load and
 * random faults for a fault period, then settling, the final reads, the invariants and a report.
 * Everything it started is stopped and removed at the end, also when the run is interrupted; the
 * report folder (report, every service's log lines, the faults, the servers' logs) is kept.
 */

import { createWriteStream, type WriteStream } from "node:fs";
import { copyFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { freePort, type PrivatePostgres, startPrivatePostgres } from "../../e2e/private-infra.ts";
import { type RunningSystem, SERVICES, startSystem } from "../system.ts";
import {
  type Audited,
  auditMismatches,
  type ChaosData,
  type CrashRecord,
  check,
  type FinalReads,
  type Fresh,
  type History,
  summaryLine,
  TRANSITIONAL,
  type Verdict,
  type VmRow,
} from "./check.ts";
import { type Faults, startFaults } from "./faults.ts";
import { type Answer, call, retryAfterMs } from "./http.ts";
import { type Nats, processTree, signalAll, startNatsCluster, startSingleNats } from "./infra.ts";
import { type CreateRecord, type Load, type LoadUser, startLoad } from "./load.ts";
import { seeded, sleep } from "./random.ts";

export interface ChaosOptions {
  readonly seed: number;
  /** The fault period, in seconds (the load runs through it). */
  readonly durationS: number;
  /** The longest wait for no VM in a transitional status, in seconds. */
  readonly settleS: number;
  /** A three-node JetStream cluster with R3 streams instead of one server. */
  readonly cluster: boolean;
  readonly users: number;
  readonly workers: number;
  /** Where the JSON report goes (its folder also gets the logs); default: a new temp folder. */
  readonly reportFile?: string;
  /** The fake driver's latency (MIKROM_FAKE_LATENCY_MS). */
  readonly latencyMs: string;
  /** How long the fresh VM may take to run, and then to be deleted, in seconds. */
  readonly freshTimeoutS: number;
  readonly requestTimeoutMs: number;
  readonly signal?: AbortSignal;
  /** Progress lines (phases, faults, crashes), each with its timestamp. */
  readonly progress?: (line: string) => void;
}

export const DEFAULTS = {
  seed: 0,
  durationS: 90,
  settleS: 120,
  cluster: false,
  users: 6,
  workers: 8,
  latencyMs: "50-400",
  freshTimeoutS: 60,
  requestTimeoutMs: 20_000,
} satisfies Omit<ChaosOptions, "signal" | "progress" | "reportFile">;

export interface ChaosResult {
  readonly summary: string;
  readonly pass: boolean;
  readonly verdict: Verdict;
  readonly reportFile: string;
  readonly reportDir: string;
}

const ADMIN = { email: "admin@chaos.mikrom", password: "chaos-admin-password-1" };
const PASSWORD = "chaos-user-password-1";

export async function runChaos(opts: ChaosOptions): Promise<ChaosResult> {
  const signal = opts.signal ?? new AbortController().signal;
  const reportFile = resolve(
    opts.reportFile ?? join(await mkdtemp(join(tmpdir(), "mikrom-chaos-")), "report.json"),
  );
  const reportDir = dirname(reportFile);
  await mkdir(reportDir, { recursive: true });
  const serviceLog = createWriteStream(join(reportDir, "services.log"));
  const faultLog = createWriteStream(join(reportDir, "faults.log"));
  const began = Date.now();
  let loadStartedAt = began;
  const stamp = (line: string): string =>
    `${new Date().toISOString()} +${((Date.now() - loadStartedAt) / 1000).toFixed(1)}s ${line}`;
  const progress = (line: string): void => {
    const text = stamp(line);
    faultLog.write(`${text}\n`);
    serviceLog.write(
      `${JSON.stringify({ timestamp: new Date().toISOString(), service: "chaos", message: line })}\n`,
    );
    opts.progress?.(text);
  };
  const interrupted = (): void => {
    if (signal.aborted) throw new Error("interrupted");
  };

  const cleanups: Array<() => Promise<unknown>> = [];
  let nats: Nats | undefined;
  let postgres: PrivatePostgres | undefined;
  let system: RunningSystem | undefined;
  let faults: Faults | undefined;
  let load: Load | undefined;
  try {
    // Servers of the run's own.
    progress(`starting PostgreSQL and ${opts.cluster ? "a three-node JetStream cluster" : "nats-server"}`);
    const infraDir = await mkdtemp(join(tmpdir(), "mikrom-chaos-infra-"));
    cleanups.push(() => rm(infraDir, { recursive: true, force: true }));
    const [pg, bus] = await Promise.all([
      startPrivatePostgres(),
      opts.cluster ? startNatsCluster(join(infraDir, "nats"), reportDir) : startSingleNats(),
    ]);
    postgres = pg;
    nats = bus;
    cleanups.push(async () => {
      await copyFile(pg.logFile, join(reportDir, "postgres.log")).catch(() => {});
      await pg.remove();
    });
    cleanups.push(() => bus.remove());
    interrupted();

    // Every service, supervised; every line each writes goes to services.log.
    const crashes: CrashRecord[] = [];
    const recent = new Map<string, string[]>();
    const port = await freePort();
    const runDir = join(infraDir, "run");
    await mkdir(runDir);
    system = startSystem({
      env: systemEnv(opts, port, bus, pg.url("mikrom"), runDir),
      onLine(service, line, stream) {
        const json = line.startsWith("{")
          ? line
          : JSON.stringify({
              timestamp: new Date().toISOString(),
              service,
              level: stream.toUpperCase(),
              message: line,
            });
        serviceLog.write(`${json}\n`);
        const lines = recent.get(service) ?? [];
        lines.push(line.slice(0, 2_000));
        if (lines.length > 15) lines.shift();
        recent.set(service, lines);
      },
      onExit(service, code, exitSignal) {
        crashes.push({
          service,
          code,
          signal: exitSignal,
          t: Date.now() - loadStartedAt,
          at: new Date().toISOString(),
          lastLines: [...(recent.get(service) ?? [])],
        });
        progress(`CRASH ${service} exited (${exitSignal ?? `code ${code}`}) without being asked to`);
      },
      onRestart(service, delayMs) {
        progress(`supervisor restarts ${service} in ${delayMs} ms`);
      },
    });
    const running = system;
    cleanups.push(() => running.stop(5_000));
    await running.ready(120_000);
    const api = running.apiUrl;
    progress(`system ready at ${api}`);
    interrupted();

    // Users, each logged in, and the superuser for the final reads.
    const users: LoadUser[] = [];
    for (let i = 0; i < opts.users; i++) {
      const email = `chaos-u${i}@chaos.mikrom`;
      users.push({ index: i, email, token: await account(api, email, PASSWORD, true, signal) });
    }
    const adminToken = await account(api, ADMIN.email, ADMIN.password, false, signal);
    interrupted();

    // The fault period, under load.
    const rng = seeded(opts.seed);
    loadStartedAt = Date.now();
    progress(
      `load: ${opts.users} users x ${opts.workers} workers; faults for ${opts.durationS} s (seed ${opts.seed})`,
    );
    const stopLoad = new AbortController();
    signal.addEventListener("abort", () => stopLoad.abort(), { once: true });
    load = startLoad({
      api,
      users,
      workers: opts.workers,
      rng: rng.fork("load"),
      startedAt: loadStartedAt,
      requestTimeoutMs: opts.requestTimeoutMs,
      signal: stopLoad.signal,
    });
    faults = startFaults(
      { system: running, nats: bus, postgres: pg },
      { rng: rng.fork("faults"), durationMs: opts.durationS * 1000, startedAt: loadStartedAt, log: progress },
    );
    await sleep(opts.durationS * 1000, signal);
    interrupted();
    // The load stops first (requests in flight finish, a create's retries end), then the last faults end.
    progress("fault period over: stopping the load, letting the last faults end");
    await Promise.all([load.stop(), faults.done]);
    const loadMs = Date.now() - loadStartedAt;
    interrupted();
    progress(`load stopped: ${load.responses.length} answers recorded`);

    // Everything runs, nothing is paused; then the system settles.
    await everythingRuns(running, bus, pg, progress);
    await running
      .ready(Math.min(90, opts.settleS) * 1000)
      .catch((error: unknown) => progress(`not ready: ${(error as Error).message}`));
    interrupted();
    const settleStarted = Date.now();
    const settled = await settle(api, adminToken, opts.settleS * 1000, signal, progress);
    const settleMs = Date.now() - settleStarted;
    interrupted();

    progress("final reads");
    const final = await readFinal(api, adminToken, load.creates, settled, signal, progress);
    interrupted();
    const hosts = await hostEvents(api, adminToken, signal);
    progress("fresh create -> running -> delete");
    const fresh = await freshCheck(api, users[0]!.token, opts, signal);
    progress(`fresh: ${fresh.ok ? "ok" : "FAIL"} (${fresh.detail})`);

    const data: ChaosData = { responses: load.responses, creates: load.creates, crashes, final, fresh };
    const verdict = check(data);
    const count = (kind: string): number => faults!.records.filter((f) => f.kind === kind).length;
    const head =
      `chaos seed=${opts.seed}${opts.cluster ? " cluster" : ""} ${opts.durationS}s: ` +
      `${count("kill")} kills, ${count("nats")} nats, ${count("postgres")} postgres, ${count("pause")} pauses; ` +
      `${load.responses.length.toLocaleString("en-US")} ops`;
    const summary = summaryLine(head, verdict, fresh);
    const report = {
      summary,
      pass: verdict.pass,
      options: { ...opts, signal: undefined, progress: undefined },
      startedAt: new Date(began).toISOString(),
      finishedAt: new Date().toISOString(),
      loadMs,
      settle: { settled, ms: settleMs },
      counts: verdict.counts,
      violations: verdict.violations,
      faults: faults.records,
      crashes,
      info: info(load.responses, load.creates, final),
      fresh,
      hosts,
      files: {
        services: join(reportDir, "services.log"),
        faults: join(reportDir, "faults.log"),
        postgres: join(reportDir, "postgres.log"),
      },
    };
    await writeFile(reportFile, `${JSON.stringify(report, null, 2)}\n`);
    return { summary, pass: verdict.pass, verdict, reportFile, reportDir };
  } finally {
    // Nothing stays paused or down, then everything goes, newest first.
    await faults?.stop().catch(() => {});
    await load?.stop().catch(() => {});
    if (system) await continueAll(system, nats, postgres);
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
    await Promise.all([endStream(serviceLog), endStream(faultLog)]);
  }
}

function systemEnv(
  opts: ChaosOptions,
  port: number,
  nats: Nats,
  databaseUrl: string,
  runDir: string,
): Record<string, string | undefined> {
  return {
    PORT: String(port),
    HOST: "127.0.0.1",
    NATS_URL: nats.url,
    MIKROM_STREAM_REPLICAS: String(nats.replicas),
    DATABASE_URL: databaseUrl,
    MIKROM_NAMESPACE: "mikrom",
    MIKROM_HOST_ID: "chaos-host",
    MIKROM_RUN_DIR: runDir,
    MIKROM_DRIVER: "fake",
    MIKROM_FAKE_LATENCY_MS: opts.latencyMs,
    MIKROM_FAKE_FAILURE_RATE: "0",
    MIKROM_HOST_VCPUS: "4096",
    MIKROM_HOST_MEMORY_MB: "4194304",
    IPPOOL_DEFAULT_CIDR: "10.64.0.0/20",
    MAX_VMS_PER_USER: "1000",
    MAX_VCPUS_PER_USER: "32000",
    MAX_MEMORY_MB_PER_USER: "32768000",
    HEARTBEAT_INTERVAL_MS: "1000",
    MIKROM_ADMIN_EMAIL: ADMIN.email,
    MIKROM_ADMIN_PASSWORD: ADMIN.password,
    JWT_SECRET: "chaos-secret-chaos-secret-chaos-secret",
    // The load is many clients from one address: throttling is not what is under test.
    RATE_LIMIT_PER_IP: "1000000",
    RATE_LIMIT_PER_USER: "1000000",
    RATE_LIMIT_AUTH_PER_IP: "10000",
    LOG_LEVEL: "info",
    LOG_FORMAT: "json",
    OTEL_TRACES_EXPORTER: "none",
    OTEL_METRICS_EXPORTER: "none",
    // Nothing of the caller's environment points a service elsewhere.
    OTEL_EXPORTER_OTLP_ENDPOINT: undefined,
    GATEWAY_DATABASE_URL: undefined,
    VM_DATABASE_URL: undefined,
    IPPOOL_DATABASE_URL: undefined,
    PROVISIONER_DATABASE_URL: undefined,
    AUDIT_DATABASE_URL: undefined,
    HEALTH_PORT: undefined,
  };
}

/** Registers (when asked) and logs in, retrying what the start-up may still refuse. */
async function account(
  api: string,
  email: string,
  password: string,
  register: boolean,
  signal: AbortSignal,
): Promise<string> {
  if (register) {
    const res = await retrying(() =>
      call(api, "POST", "/api/v1/auth/register", { body: { email, password, name: "Chaos" }, signal }),
    );
    // 409/400: registered by an earlier attempt whose answer was lost.
    if (res.status !== 201 && res.status !== 409 && res.status !== 400)
      throw new Error(`register ${email}: ${res.status} ${JSON.stringify(res.body)}`);
  }
  const res = await retrying(() =>
    call(api, "POST", "/api/v1/auth/login/json", { body: { username: email, password }, signal }),
  );
  if (res.status !== 200) throw new Error(`login ${email}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.access_token as string;
}

/** Calls again while the answer is no answer, a 5xx or a 429, until `ms` have passed. */
async function retrying(fn: () => Promise<Answer>, ms = 30_000): Promise<Answer> {
  const deadline = Date.now() + ms;
  for (;;) {
    const answer = await fn();
    const again = answer.status === 0 || answer.status >= 500 || answer.status === 429;
    if (!again || Date.now() > deadline || answer.error === "aborted") return answer;
    await sleep(retryAfterMs(answer.retryAfter, 500));
  }
}

/** Waits until every service, NATS node and PostgreSQL runs (restarting what is down) and nothing is paused. */
async function everythingRuns(
  system: RunningSystem,
  nats: Nats,
  postgres: PrivatePostgres,
  progress: (line: string) => void,
): Promise<void> {
  for (const node of nats.nodes) if (node.pid() === undefined) await node.start();
  if ((await postgres.pid()) === undefined) await postgres.start();
  await continueAll(system, nats, postgres);
  const alive = (name: (typeof SERVICES)[number]): boolean => {
    const child = system.processes.get(name)?.child;
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  };
  // A service that crashed is started again by the supervisor after its back-off (at most 30 s).
  const deadline = Date.now() + 40_000;
  while (SERVICES.some((s) => !alive(s)) && Date.now() < deadline) await sleep(250);
  for (const name of SERVICES)
    if (!alive(name)) {
      progress(`${name} is still down: starting it`);
      system.restart(name);
    }
  progress("every process runs, nothing is paused");
}

/** SIGCONT to every process of the run: nothing may stay stopped (harmless to running ones). */
async function continueAll(system: RunningSystem, nats?: Nats, postgres?: PrivatePostgres): Promise<void> {
  const pids: number[] = [];
  for (const proc of system.processes.values()) if (proc.child.pid) pids.push(proc.child.pid);
  for (const node of nats?.nodes ?? []) {
    const pid = node.pid();
    if (pid) pids.push(pid);
  }
  const pgPid = await postgres?.pid().catch(() => undefined);
  if (pgPid) pids.push(...(await processTree(pgPid)));
  signalAll(pids, "SIGCONT");
}

/** Every live VM, page by page, as the superuser; null when a page could not be read. */
async function listAll(api: string, token: string, signal: AbortSignal): Promise<VmRow[] | null> {
  const vms: VmRow[] = [];
  for (let page = 1; ; page++) {
    const res = await retrying(
      () => call(api, "GET", `/api/v1/vms?page=${page}&page_size=100`, { token, signal }),
      10_000,
    );
    if (res.status !== 200) return null;
    vms.push(...(res.body.items as VmRow[]));
    if (page >= res.body.total_pages) return vms;
  }
}

/** Until no VM is in a transitional status, or the deadline; true when settled. */
async function settle(
  api: string,
  token: string,
  ms: number,
  signal: AbortSignal,
  progress: (line: string) => void,
): Promise<boolean> {
  const deadline = Date.now() + ms;
  let last = "";
  for (;;) {
    const vms = await listAll(api, token, signal);
    const moving = vms?.filter((v) => TRANSITIONAL.includes(v.status)) ?? null;
    if (moving !== null && moving.length === 0) {
      progress(`settled: ${vms!.length} live VMs, none in a transitional status`);
      return true;
    }
    const now = moving === null ? "list unreadable" : `${moving.length} VMs in a transitional status`;
    if (now !== last) progress(`settling: ${now}`);
    last = now;
    if (Date.now() > deadline || signal.aborted) {
      progress(`not settled after ${ms / 1000} s: ${now}`);
      return false;
    }
    await sleep(2_000, signal);
  }
}

/** Runs `fn` over `items`, `limit` at a time. */
async function eachLimited<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

/** Every page of an audit query, or null when a page could not be read. */
async function auditPages(
  api: string,
  token: string,
  query: string,
  signal: AbortSignal,
): Promise<Array<{
  event_id: string;
  context: string;
  vm_id: string | null;
  type: string;
  data: Record<string, unknown>;
}> | null> {
  const items = [];
  for (let page = 1; ; page++) {
    const res = await retrying(() =>
      call(api, "GET", `/api/v1/audit?${query}&page=${page}&page_size=100`, { token, signal }),
    );
    if (res.status !== 200) return null;
    items.push(...res.body.items);
    if (page >= res.body.total_pages) return items;
  }
}

async function readFinal(
  api: string,
  token: string,
  creates: readonly CreateRecord[],
  settled: boolean,
  signal: AbortSignal,
  progress: (line: string) => void,
): Promise<FinalReads> {
  const readErrors: string[] = [];
  const vms = await listAll(api, token, signal);
  if (vms === null) readErrors.push("GET /api/v1/vms: no complete list");
  const created = await auditPages(api, token, "type=VmCreated", signal);
  if (created === null) readErrors.push("GET /api/v1/audit?type=VmCreated: unreadable");
  const auditCreated = created
    ?.filter((e) => e.context === "vm")
    .map((e) => ({ vmId: String(e.vm_id ?? e.data.vmId), name: String(e.data.name) }));
  const stats = await retrying(() => call(api, "GET", "/api/v1/ippools/stats", { token, signal }));
  if (stats.status !== 200) readErrors.push(`GET /api/v1/ippools/stats: ${stats.status}`);
  const allocated = stats.status === 200 ? Number(stats.body.allocated) : null;

  const ids = new Set<string>();
  for (const vm of vms ?? []) ids.add(vm.vm_id);
  for (const c of creates) for (const id of c.vmIds) ids.add(id);
  for (const c of auditCreated ?? []) ids.add(c.vmId);
  const histories: Record<string, History> = {};
  const audit: Record<string, Audited> = {};
  const failed = new Map<string, string>();
  async function readOne(vmId: string): Promise<void> {
    const res = await retrying(() => call(api, "GET", `/api/v1/vms/${vmId}/events`, { token, signal }));
    if (res.status === 200) {
      const events = res.body.events as Array<{ event_id: string; type: string }>;
      histories[vmId] = {
        status: 200,
        eventIds: events.map((e) => e.event_id),
        types: events.map((e) => e.type),
      };
    } else if (res.status === 404) histories[vmId] = { status: 404, eventIds: [], types: [] };
    else failed.set(vmId, `GET /api/v1/vms/${vmId}/events: ${res.status}`);
    const entries = await auditPages(api, token, `vm_id=${encodeURIComponent(vmId)}`, signal);
    if (entries === null) failed.set(vmId, `GET /api/v1/audit?vm_id=${vmId}: unreadable`);
    else {
      const own = entries.filter((e) => e.context === "vm");
      audit[vmId] = { eventIds: own.map((e) => e.event_id), types: own.map((e) => e.type) };
    }
  }
  progress(`reading the history and audit entries of ${ids.size} VMs`);
  await eachLimited([...ids], 6, async (vmId) => readOne(vmId));
  // The audit log follows the events a little behind: a mismatch must last before it counts.
  for (let round = 1; round <= 3; round++) {
    const partial = {
      vms,
      histories,
      audit,
      auditCreated: auditCreated ?? null,
      allocated,
      settled,
      readErrors,
    };
    const lagging = auditMismatches(partial).map((v) => String(v.detail.vmId));
    // Not listed, no history, nothing audited: never existed, or the audit log is behind.
    for (const [vmId, h] of Object.entries(histories))
      if (h.status === 404 && audit[vmId]?.eventIds.length === 0) lagging.push(vmId);
    const retry = [...new Set([...lagging, ...failed.keys()])];
    if (retry.length === 0 || signal.aborted) break;
    progress(`audit or history of ${retry.length} VMs differ or were unreadable: reading again (${round}/3)`);
    await sleep(3_000, signal);
    for (const id of retry) failed.delete(id);
    await eachLimited(retry, 6, async (vmId) => readOne(vmId));
  }
  readErrors.push(...failed.values());
  return { vms, histories, audit, auditCreated: auditCreated ?? null, allocated, settled, readErrors };
}

/**
 * The host's presence, for explaining a host that vm-service lost: every registration and stop as
 * the audit log recorded them, and the host registry now (last heard from, status).
 */
async function hostEvents(api: string, token: string, signal: AbortSignal): Promise<Record<string, unknown>> {
  const brief = (e: { type: string; data: Record<string, unknown>; recorded_at?: string }) => ({
    type: e.type,
    at: e.data.at ?? e.data.startedAt,
    recorded_at: e.recorded_at,
  });
  const out: Record<string, unknown> = {};
  for (const type of ["HostRegistered", "HostStopped"]) {
    const items = await auditPages(api, token, `type=${type}`, signal);
    out[type] = items?.map(brief) ?? "unreadable";
  }
  const hosts = await retrying(() => call(api, "GET", "/api/v1/hosts", { token, signal }));
  out.hosts = hosts.status === 200 ? hosts.body.items : "unreadable";
  return out;
}

/** A new VM is created, runs and is deleted through the API. */
async function freshCheck(
  api: string,
  token: string,
  opts: ChaosOptions,
  signal: AbortSignal,
): Promise<Fresh> {
  const key = `fresh-check-${opts.seed}`;
  const body = { name: "fresh-check", vcpu_count: 1, memory_mb: 128 };
  const deadline = Date.now() + 30_000;
  let created: Answer;
  for (;;) {
    created = await call(api, "POST", "/api/v1/vms", {
      token,
      body,
      headers: { "idempotency-key": key },
      signal,
    });
    const inProgress = created.status === 409 && /still in progress/i.test(String(created.body?.detail));
    const again = created.status === 0 || created.status >= 500 || created.status === 429 || inProgress;
    if (!again || Date.now() > deadline || signal.aborted) break;
    await sleep(retryAfterMs(created.retryAfter, 500));
  }
  if (created.status !== 201 && created.status !== 202)
    return { ok: false, detail: `create answered ${created.status} ${JSON.stringify(created.body)}` };
  const vmId = String(created.body.vm_id);
  const waited = await call(
    api,
    "GET",
    `/api/v1/vms/${vmId}/wait?status=running&timeout=${opts.freshTimeoutS}`,
    {
      token,
      signal,
      timeoutMs: (opts.freshTimeoutS + 15) * 1000,
    },
  );
  if (waited.status !== 200 || waited.body.reached !== true)
    return {
      ok: false,
      detail: `${vmId} did not run within ${opts.freshTimeoutS} s: ${waited.status} ${JSON.stringify(waited.body?.vm ?? waited.body)}`,
    };
  const deleted = await retrying(() => call(api, "DELETE", `/api/v1/vms/${vmId}`, { token, signal }));
  if (deleted.status !== 202) return { ok: false, detail: `delete of ${vmId} answered ${deleted.status}` };
  const gone = Date.now() + opts.freshTimeoutS * 1000;
  for (;;) {
    const res = await call(api, "GET", `/api/v1/vms/${vmId}`, { token, signal });
    if (res.status === 404) return { ok: true, detail: `${vmId} ran and was deleted` };
    if (Date.now() > gone || signal.aborted)
      return {
        ok: false,
        detail: `${vmId} not gone ${opts.freshTimeoutS} s after its delete: ${res.status} ${res.body?.status}`,
      };
    await sleep(500, signal);
  }
}

/** Figures that explain a run without being violations. */
function info(responses: ChaosData["responses"], creates: readonly CreateRecord[], final: FinalReads) {
  const byRoute: Record<string, Record<string, number>> = {};
  for (const r of responses) {
    const route = byRoute[r.route] ?? {};
    route[r.status] = (route[r.status] ?? 0) + 1;
    byRoute[r.route] = route;
  }
  const finalStatuses: Record<string, number> = {};
  for (const vm of final.vms ?? []) finalStatuses[vm.status] = (finalStatuses[vm.status] ?? 0) + 1;
  const noAnswer: Record<string, number> = {};
  for (const r of responses)
    if (r.status === 0) noAnswer[r.detail ?? "?"] = (noAnswer[r.detail ?? "?"] ?? 0) + 1;
  return {
    answers: responses.length,
    byRoute,
    noAnswer,
    creates: {
      keys: creates.length,
      acked: creates.filter((c) => c.outcome === "acked").length,
      refused: creates
        .filter((c) => c.outcome === "refused")
        .map((c) => ({ key: c.key, status: c.lastStatus })),
      unresolved: creates
        .filter((c) => c.outcome === "unresolved")
        .map((c) => ({ key: c.key, attempts: c.attempts, lastStatus: c.lastStatus })),
    },
    liveVms: final.vms?.length ?? null,
    finalStatuses,
    allocated: final.allocated,
  };
}

function endStream(stream: WriteStream): Promise<void> {
  return new Promise((resolve) => stream.end(() => resolve()));
}
