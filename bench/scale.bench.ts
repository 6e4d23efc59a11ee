/**
 * Scale, not just speed: the whole system (every service its own process, bench/system.ts) with 100
 * hosts and thousands of VMs in it. The hosts are played by this process: each registers on its own
 * subject (`<ns>.evt.host.<host>.…`) and heartbeats on `<ns>.beat.<host>` (core NATS) every 10 s, as
 * an agent does by default,
 * and answers each BootVm sent to it with VmBooted under its own id (vm-service believes a host's
 * fact only from that host's subject). The system's own provisioner runs too, with no room for any
 * VM, so that every service is measured. VMs are created through the REST API, 64 at a time, with at
 * most 128 between POST and `running`, so no step waits past its deadline.
 *
 * At each checkpoint (1,000 VMs, then `vms`), with the creates paused:
 *   - placement: VMs, vCPUs and memory per host, max/min (target VMs ≤ 1.2), from the BootVm
 *     commands the hosts got;
 *   - RSS of each service (VmRSS and its peak VmHWM, /proc/<pid>/status; target < 250 MiB);
 *   - GET /api/v1/vms latency through the gateway, as a user (holding 1/20 of the VMs) and as a
 *     superuser, page 1 and the last page (by `page`, OFFSET, and by the `page_token` the walk from
 *     page 1 ends with, keyset), page_size 50, 200 requests one after another (p99 < 50 ms);
 *   - the CPU the 100 hosts' heartbeats cost: windows of 10 s with heartbeats flowing and without
 *     (hosts stay up: the timeout is 45 s here, over the 30 s of silence two skipped beats make), alternating, two of each; the cost
 *     is the mean difference, per process, in % of one core (target < 5 % for vm-service +
 *     nats-server + PostgreSQL). PostgreSQL is this run's backends (pg_stat_activity, sampled every
 *     second, so a backend that ends keeps what it used), not the whole shared server.
 * Then the same creates with every VM the same size (1 vCPU, 512 MB): placement only.
 *
 * node_modules/.bin/node bench/scale.bench.ts [vms=10000] [mixed|equal|both=both]
 *
 * Exits non-zero only when the run breaks (VMs that fail or never run, a service that exits);
 * a missed target is reported, not asserted.
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { setTimeout as delay } from "node:timers/promises";
import { announce } from "@mikrom/bus";
import {
  Header,
  HostHeartbeat,
  HostRegistered,
  type MessageDef,
  names as namesFor,
  VmBooted,
} from "@mikrom/contracts";
import { jetstream } from "@nats-io/jetstream";
import { connect, type NatsConnection, headers as natsHeaders } from "@nats-io/transport-node";
import type pg from "pg";
import { processTree } from "../scripts/chaos/infra.ts";
import { type Bench, call, inBatches, openBenchInfra, percentile, userToken } from "./system.ts";

const VMS = Number(process.argv[2] ?? 10_000);
const RUNS = process.argv[3] ?? "both";
const HOSTS = 100;
const HOST_VCPUS = 512;
const HOST_MEMORY_MB = 1_048_576;
const HEARTBEAT_MS = 10_000;
const USERS = 20;
const POSTS_IN_FLIGHT = 64;
const UNFINISHED_MAX = 128;
const PAGE_SIZE = 50;
const LIST_REQUESTS = 200;
const WINDOW_MS = 10_000;
/** A VM not running this long after its POST breaks the run. */
const STUCK_MS = 120_000;
const ADMIN = { email: "admin@bench.mikrom", password: "bench-admin-password-1" };

const MIXED = [
  { vcpus: 1, memoryMb: 512 },
  { vcpus: 2, memoryMb: 1024 },
  { vcpus: 2, memoryMb: 2048 },
  { vcpus: 4, memoryMb: 4096 },
  { vcpus: 1, memoryMb: 1024 },
  { vcpus: 8, memoryMb: 8192 },
];
const EQUAL = [{ vcpus: 1, memoryMb: 512 }];

const checkpoints = [...new Set([Math.min(1_000, VMS), VMS])];
const hostIds = Array.from({ length: HOSTS }, (_, i) => `scale-host-${String(i).padStart(3, "0")}`);
const out = (line = ""): void => void process.stdout.write(`${line}\n`);
const mib = (kb: number): string => `${(kb / 1024).toFixed(0)} MiB`;

/** The same sizes in the same order every run (mulberry32). */
function seeded(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The 100 hosts, played by this process on their own subjects. */
class FakeHosts {
  /** What each host was asked to boot, by VM (a command sent again counts once). */
  readonly booted = new Map<string, { host: string; vcpus: number; memoryMb: number }>();
  beating = true;
  private timers: Array<ReturnType<typeof setTimeout>> = [];
  private readonly js;
  private readonly nc: NatsConnection;
  private readonly ns: ReturnType<typeof namesFor>;

  constructor(nc: NatsConnection, namespace: string) {
    this.nc = nc;
    this.ns = namesFor(namespace);
    this.js = jetstream(nc);
    nc.subscribe(`${namespace}.cmd.provisioner.*.boot`, {
      callback: (_e, m) => {
        const host = m.subject.split(".")[3]!;
        if (!host.startsWith("scale-host-")) return;
        const data = m.json<{ vmId: string; vcpuCount: number; memoryMb: number }>();
        this.booted.set(data.vmId, { host, vcpus: data.vcpuCount, memoryMb: data.memoryMb });
        void this.publish(this.ns.event("provisioner", host, "VmBooted"), VmBooted, {
          vmId: data.vmId,
          hostId: host,
          driver: "fake",
          bootMs: 0,
        });
      },
    });
  }

  publish(subject: string, def: MessageDef, data: unknown): Promise<unknown> {
    const id = randomUUID();
    const h = natsHeaders();
    h.set(Header.MsgId, id);
    h.set(Header.Type, def.type);
    h.set(Header.SchemaVersion, String(def.version));
    return this.js.publish(subject, JSON.stringify(data), { msgID: id, headers: h });
  }

  async register(): Promise<void> {
    const startedAt = new Date().toISOString();
    await Promise.all(
      hostIds.map((hostId) =>
        this.publish(this.ns.event("host", hostId, "HostRegistered"), HostRegistered, {
          hostId,
          driver: "fake",
          vcpus: HOST_VCPUS,
          memoryMb: HOST_MEMORY_MB,
          startedAt,
        }),
      ),
    );
    // Each host beats every 10 s, the hosts spread over the interval as independent agents are.
    hostIds.forEach((hostId, i) => {
      const beat = (): void => {
        if (!this.beating) return;
        const runningVms = [...this.booted.values()].filter((b) => b.host === hostId).length;
        announce(this.nc, HostHeartbeat, this.ns.heartbeat(hostId), {
          hostId,
          at: new Date().toISOString(),
          runningVms,
        });
      };
      const start = setTimeout(
        () => {
          beat();
          this.timers.push(setInterval(beat, HEARTBEAT_MS));
        },
        (i * HEARTBEAT_MS) / HOSTS,
      );
      this.timers.push(start);
    });
  }

  stop(): void {
    // clearTimeout clears either kind.
    for (const t of this.timers) clearTimeout(t);
  }
}

interface Placement {
  vms: number[];
  vcpus: number[];
  memoryMb: number[];
}

function placement(hosts: FakeHosts): Placement {
  const by = new Map(hostIds.map((h) => [h, { vms: 0, vcpus: 0, memoryMb: 0 }]));
  for (const b of hosts.booted.values()) {
    const load = by.get(b.host)!;
    load.vms++;
    load.vcpus += b.vcpus;
    load.memoryMb += b.memoryMb;
  }
  const loads = [...by.values()];
  return {
    vms: loads.map((l) => l.vms),
    vcpus: loads.map((l) => l.vcpus),
    memoryMb: loads.map((l) => l.memoryMb),
  };
}

function spread(label: string, xs: number[], target?: number): string {
  const max = Math.max(...xs);
  const min = Math.min(...xs);
  const ratio = min > 0 ? max / min : Number.POSITIVE_INFINITY;
  const goal = target === undefined ? "" : ` (target ≤ ${target}: ${ratio <= target ? "met" : "MISSED"})`;
  return `  ${label.padEnd(10)} max ${max} / min ${min} = ${ratio.toFixed(3)}${goal}`;
}

/** utime+stime of a process in ms; undefined once it is gone. */
function cpuMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return undefined;
  }
}

function statusKb(pid: number, field: string): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(new RegExp(`^${field}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? Number.NaN);
}

/**
 * CPU per process over a window, sampled every second: each process keeps the most it was seen
 * using, so a PostgreSQL backend that ends within the window keeps its share (to within a second).
 */
async function cpuOver(
  bench: Bench,
  admin: pg.Client,
  namespace: string,
  ms: number,
): Promise<Map<string, number>> {
  const first = new Map<number, number>();
  const last = new Map<number, number>();
  const owner = new Map<number, string>();
  const { rows } = await admin.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
  const backend = readFileSync(`/proc/${rows[0]!.pid}/stat`, "utf8");
  const postmaster = Number(backend.slice(backend.lastIndexOf(")") + 2).split(" ")[1]);
  const look = async (): Promise<void> => {
    const pids = new Map<number, string>([...bench.costs.processes()].map(([name, pid]) => [pid, name]));
    const ours = await admin.query<{ pid: number }>(
      "SELECT pid FROM pg_stat_activity WHERE starts_with(datname, $1)",
      [namespace],
    );
    for (const { pid } of ours.rows) pids.set(pid, "postgresql (this run's backends)");
    for (const pid of await processTree(postmaster))
      if (!pids.has(pid)) pids.set(pid, "postgresql (rest of the server)");
    for (const [pid, name] of pids) {
      const used = cpuMs(pid);
      if (used === undefined) continue;
      owner.set(pid, name);
      if (!first.has(pid)) first.set(pid, used);
      last.set(pid, used);
    }
  };
  await look();
  const end = Date.now() + ms;
  while (Date.now() < end) {
    await delay(Math.min(1_000, end - Date.now()));
    await look();
  }
  const byName = new Map<string, number>();
  for (const [pid, used] of last) {
    const name = owner.get(pid)!;
    byName.set(name, (byName.get(name) ?? 0) + used - first.get(pid)!);
  }
  return byName;
}

/** `path` requested one after another; p50 / p99 / max in ms. */
async function latency(api: string, token: string, path: string): Promise<number[]> {
  for (let i = 0; i < 10; i++) await call(api, "GET", path, token);
  const ms: number[] = [];
  for (let i = 0; i < LIST_REQUESTS; i++) {
    const t0 = performance.now();
    await call(api, "GET", path, token);
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  return [percentile(ms, 50), percentile(ms, 99), ms.at(-1)!];
}

/** The page_token of the last page, following next_page_token from page 1; null: one page only. */
async function lastPageToken(api: string, token: string): Promise<string | null> {
  let last: string | null = null;
  for (;;) {
    const query = last === null ? "" : `&page_token=${last}`;
    const page = await call(api, "GET", `/api/v1/vms?page_size=${PAGE_SIZE}${query}`, token);
    if (page.next_page_token === null) return last;
    last = page.next_page_token;
  }
}

interface Figures {
  vms: number;
  placement: Placement;
  /** Each service's VmRSS and VmHWM (peak) 2 s after the creates, and its VmRSS after the idle windows. */
  rssKb?: Map<string, [number, number, number]>;
  listing?: Array<[string, number[]]>;
  heartbeat?: Map<string, number>;
}

async function measure(
  bench: Bench,
  admin: pg.Client,
  namespace: string,
  hosts: FakeHosts,
  users: { token: string; superuser: string },
  full: boolean,
): Promise<Figures> {
  const figures: Figures = { vms: hosts.booted.size, placement: placement(hosts) };
  if (!full) return figures;
  const rss = new Map(
    [...bench.system.processes].map(([name, proc]) => {
      const now: [number, number, number] = [
        statusKb(proc.child.pid!, "VmRSS"),
        statusKb(proc.child.pid!, "VmHWM"),
        0,
      ];
      return [name, now];
    }),
  );
  figures.rssKb = rss;
  const userList = await call(bench.api, "GET", `/api/v1/vms?page_size=${PAGE_SIZE}`, users.token);
  const allList = await call(bench.api, "GET", `/api/v1/vms?page_size=${PAGE_SIZE}`, users.superuser);
  figures.listing = [];
  for (const [who, token, pages] of [
    ["user", users.token, userList.total_pages],
    ["superuser", users.superuser, allList.total_pages],
  ] as const) {
    for (const page of new Set([1, pages])) {
      const path = `/api/v1/vms?page=${page}&page_size=${PAGE_SIZE}`;
      figures.listing.push([`${who}, page ${page} of ${pages}`, await latency(bench.api, token, path)]);
    }
    const last = await lastPageToken(bench.api, token);
    if (last !== null) {
      const path = `/api/v1/vms?page_size=${PAGE_SIZE}&page_token=${last}`;
      figures.listing.push([`${who}, page ${pages} by token`, await latency(bench.api, token, path)]);
    }
  }
  // Heartbeats on, off, on, off: the difference of the means is what they cost.
  const on: Array<Map<string, number>> = [];
  const off: Array<Map<string, number>> = [];
  process.stderr.write(`  heartbeat windows from ${new Date().toISOString()}\n`);
  for (const beating of [true, false, true, false]) {
    hosts.beating = beating;
    // A window without heartbeats starts once the last one sent before it was handled.
    await delay(1_000);
    (beating ? on : off).push(await cpuOver(bench, admin, namespace, WINDOW_MS));
  }
  hosts.beating = true;
  for (const [name, proc] of bench.system.processes) rss.get(name)![2] = statusKb(proc.child.pid!, "VmRSS");
  const names = new Set([...on, ...off].flatMap((m) => [...m.keys()]));
  const mean = (ms: Array<Map<string, number>>, name: string): number =>
    ms.reduce((sum, m) => sum + (m.get(name) ?? 0), 0) / ms.length;
  figures.heartbeat = new Map(
    [...names].map((name) => [name, ((mean(on, name) - mean(off, name)) / WINDOW_MS) * 100]),
  );
  for (const name of names)
    figures.heartbeat.set(`${name} (idle, without heartbeats)`, (mean(off, name) / WINDOW_MS) * 100);
  return figures;
}

function report(label: string, f: Figures): void {
  out(`\n${label}: ${f.vms} VMs on ${HOSTS} hosts`);
  out("placement (VMs, vCPUs, memory per host, from the BootVm commands each host got):");
  out(spread("VMs", f.placement.vms, 1.2));
  out(spread("vCPUs", f.placement.vcpus));
  out(spread("memory MB", f.placement.memoryMb));
  if (f.rssKb) {
    out("RSS per service (target < 250 MiB): 2 s after the creates / peak so far / after 45 s idle:");
    for (const [name, [rss, hwm, idle]] of f.rssKb)
      out(
        `  ${name.padEnd(15)} ${mib(rss).padStart(8)} / ${mib(hwm).padStart(8)} / ${mib(idle).padStart(8)}${rss / 1024 < 250 ? "" : "  MISSED"}`,
      );
  }
  if (f.listing) {
    out(
      `GET /api/v1/vms?page_size=${PAGE_SIZE}, ${LIST_REQUESTS} in a row (target p99 < 50 ms), p50 / p99 / max ms:`,
    );
    for (const [what, [p50, p99, max]] of f.listing)
      out(
        `  ${what.padEnd(28)} ${p50!.toFixed(1)} / ${p99!.toFixed(1)} / ${max!.toFixed(1)}${p99! < 50 ? "" : "  MISSED"}`,
      );
  }
  if (f.heartbeat) {
    const hb = f.heartbeat;
    const core = ["vm-service", "nats-server", "postgresql (this run's backends)"];
    const sum = core.reduce((s, n) => s + (hb.get(n) ?? 0), 0);
    out(
      `heartbeats of ${HOSTS} hosts every ${HEARTBEAT_MS / 1000} s: CPU with them minus without, % of one core`,
    );
    out(
      `  vm-service + nats-server + PostgreSQL: ${sum.toFixed(2)} % (target < 5 %: ${sum < 5 ? "met" : "MISSED"})`,
    );
    const rest = [...hb].filter(([n]) => !n.includes("(idle"));
    out(`  each: ${rest.map(([n, v]) => `${n} ${v.toFixed(2)}`).join(", ")}`);
    out(
      `  idle without heartbeats: ${[...hb]
        .filter(([n]) => n.includes("(idle"))
        .map(([n, v]) => `${n.replace(" (idle, without heartbeats)", "")} ${v.toFixed(2)}`)
        .join(", ")}`,
    );
  }
}

async function run(
  label: string,
  sizes: typeof MIXED,
  full: boolean,
  infra: Awaited<ReturnType<typeof openBenchInfra>>,
  admin: pg.Client,
): Promise<boolean> {
  const warnings = new Map<string, number>();
  /** The first line of each warning, its fields and time included. */
  const firstWarnings = new Map<string, string>();
  const bench = await infra.start(
    label.split(" ")[0]!,
    {
      MIKROM_DRIVER: "fake",
      // The system's own agent: up, and with room for no VM (the smallest is 512 MB).
      MIKROM_HOST_VCPUS: "1",
      MIKROM_HOST_MEMORY_MB: "128",
      HEARTBEAT_INTERVAL_MS: String(HEARTBEAT_MS),
      // A window without heartbeats (11 s) can skip two beats of a host: 30 s of silence, the default
      // timeout. The windows measure CPU, not liveness: hosts must stay up through them.
      HOST_HEARTBEAT_TIMEOUT_MS: String(4.5 * HEARTBEAT_MS),
      MIKROM_ADMIN_EMAIL: ADMIN.email,
      MIKROM_ADMIN_PASSWORD: ADMIN.password,
    },
    (service, line) => {
      if (!line.includes('"level":"WARN"')) return;
      const message = /"message":"([^"]*)"/.exec(line)?.[1] ?? line.slice(0, 120);
      const key = `${service}: ${message}`;
      warnings.set(key, (warnings.get(key) ?? 0) + 1);
      if (!firstWarnings.has(key)) firstWarnings.set(key, line.slice(0, 400));
    },
  );
  const namespace = bench.system.env.MIKROM_NAMESPACE!;
  const nc = await connect({
    servers: bench.system.env.NATS_URL!,
    noAsyncTraces: true,
    name: "scale bench hosts",
  });
  let broken = false;
  try {
    const hosts = new FakeHosts(nc, namespace);
    await hosts.register();
    const running = new Set<string>();
    const failed = new Map<string, string>();
    const waiting = new Map<string, () => void>();
    nc.subscribe(`${namespace}.evt.vm.*.*`, {
      callback: (_e, m) => {
        const [, , , vmId, type] = m.subject.split(".");
        if (type === "VmRunning") running.add(vmId!);
        else if (type === "VmFailed") failed.set(vmId!, m.string().slice(0, 200));
        else return;
        waiting.get(vmId!)?.();
      },
    });
    await nc.flush();
    const tokens = await inBatches(
      Array.from({ length: USERS }, (_, i) => i),
      4,
      (i) => userToken(bench.api, i),
    );
    const login = await call(bench.api, "POST", "/api/v1/auth/login/json", undefined, {
      username: ADMIN.email,
      password: ADMIN.password,
    });
    const random = seeded(42);
    let created = 0;
    let unfinished = 0;
    const stuck: string[] = [];
    const rates: string[] = [];
    const figures: Figures[] = [];
    for (const target of checkpoints) {
      const t0 = performance.now();
      const from = created;
      await inBatches(
        Array.from({ length: target - from }, (_, i) => from + i),
        POSTS_IN_FLIGHT,
        async (i) => {
          while (unfinished >= UNFINISHED_MAX) await delay(5);
          unfinished++;
          const size = sizes[Math.floor(random() * sizes.length)]!;
          try {
            const vm = await call(bench.api, "POST", "/api/v1/vms", tokens[i % USERS], {
              name: `scale-${i}`,
              vcpu_count: size.vcpus,
              memory_mb: size.memoryMb,
            });
            const vmId: string = vm.vm_id;
            if (!running.has(vmId) && !failed.has(vmId)) {
              const done = new Promise<void>((resolve) => waiting.set(vmId, resolve));
              const finished = await Promise.race([done.then(() => true), delay(STUCK_MS).then(() => false)]);
              waiting.delete(vmId);
              if (!finished) stuck.push(vmId);
            }
          } catch (error) {
            failed.set(`#${i}`, (error as Error).message.slice(0, 200));
          } finally {
            unfinished--;
            created++;
          }
        },
      );
      const seconds = (performance.now() - t0) / 1000;
      rates.push(
        `${from}→${target}: ${((target - from) / seconds).toFixed(1)} VMs/s (${seconds.toFixed(0)} s)`,
      );
      const first = [...failed.values()][0];
      process.stderr.write(
        `  ${label}: ${running.size} running, ${failed.size} failed (${rates.at(-1)})${first ? `; the first: ${first}` : ""}\n`,
      );
      await delay(2_000);
      figures.push(
        await measure(
          bench,
          admin,
          namespace,
          hosts,
          { token: tokens[0]!, superuser: login.access_token },
          full,
        ),
      );
    }
    hosts.stop();
    for (const f of figures) report(label, f);
    out(
      `creates (REST, ${POSTS_IN_FLIGHT} POSTs in flight, ≤ ${UNFINISHED_MAX} not yet running): ${rates.join("; ")}`,
    );
    if (failed.size > 0 || stuck.length > 0) {
      broken = true;
      out(`BROKEN: ${failed.size} failed, ${stuck.length} not running after ${STUCK_MS / 1000} s`);
      for (const [vm, why] of [...failed].slice(0, 3)) out(`  ${vm}: ${why}`);
    }
    if (warnings.size > 0) {
      out("warnings logged:");
      for (const [w, n] of [...warnings].slice(0, 10))
        out(`  ${n} × ${w}\n    the first: ${firstWarnings.get(w)}`);
    }
    if (bench.problems.length > 0) {
      out(`${bench.problems.length} ERROR lines; the first: ${bench.problems[0]!.slice(0, 400)}`);
    }
  } catch (error) {
    broken = true;
    out(`BROKEN: ${(error as Error).stack}`);
  } finally {
    await nc.close();
    await bench.close();
  }
  return !broken;
}

const infra = await openBenchInfra();
const admin = new (await import("pg")).default.Client({
  connectionString: process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres",
});
await admin.connect();
let ok = true;
try {
  if (RUNS !== "equal") ok = (await run("mixed sizes", MIXED, true, infra, admin)) && ok;
  if (RUNS !== "mixed") ok = (await run("equal sizes", EQUAL, false, infra, admin)) && ok;
} finally {
  await admin.end();
  await infra.close();
}
process.exit(ok ? 0 : 1);
