/**
 * The whole system, end to end, as its users see it: every service its own process (scripts/system.ts)
 * over loopback NATS (a server of the benchmark's own) and PostgreSQL; each client registers, then
 * loops POST /api/v1/vms and GET /api/v1/vms/{id}/wait?status=running. Figures: VMs taken from create
 * to `running` per second, the p50/p99 of create→running as the client sees it, and what each VM cost
 * the machine (bench/costs.ts: CPU per process, NATS messages, commits, spans).
 *
 *   1. fake driver (no boot latency), 64 concurrent clients, for FAKE_SECONDS, with every trace
 *      exported (100 % sampling, OTLP/protobuf to a receiver in this process), and the same with
 *      tracing off, the same-run reference for what telemetry costs: traced, untraced, untraced,
 *      traced, so that neither gains from going first;
 *   2. qemu driver (real microVMs), when qemu-system-x86_64 is installed, 10 VMs at once and then 10
 *      one after another; for each VM, create→running minus its guest's own boot (the driver's spawn
 *      → readiness line, from the provisioner's "guest ready" line in the same run): what the
 *      control plane adds to a boot.
 *
 * node_modules/.bin/node bench/e2e.bench.ts [clients=64] [fake seconds=10]   [fake-only]
 *
 * Everything it makes goes afterwards: the VMs (deleted through the API; the provisioner also stops
 * what is left on exit), the services' databases, the NATS server, the run folder.
 */
import { existsSync } from "node:fs";
import { perVm, type Sample, sample } from "./costs.ts";
import {
  type Bench,
  call,
  deleteAll,
  inBatches,
  type OnLine,
  openBenchInfra,
  percentile,
  userToken,
} from "./system.ts";

const CLIENTS = Number(process.argv[2] ?? 64);
const FAKE_SECONDS = Number(process.argv[3] ?? 10);
const QEMU_VMS = 10;
const QEMU_LIMIT_MS = 90_000;
const infra = await openBenchInfra();
interface Run {
  vms: number;
  failed: number;
  seconds: number;
  latenciesMs: number[];
  created: Array<{ token: string; vmId: string }>;
  /** create→running of each VM that got there. */
  byVm?: Map<string, number>;
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
    run.byVm?.set(vm.vm_id, performance.now() - started);
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
  const run: Run = { vms: 0, failed: 0, seconds: 0, latenciesMs: [], created: [], byVm: new Map() };
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
  onLine?: OnLine,
): Promise<Run> {
  const bench: Bench = await infra.start(env.MIKROM_DRIVER ?? "any", env, onLine);
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

/**
 * Real guests: `clients` each creating `perClient` VMs one after another. For each VM, create→running
 * minus its guest's own boot (spawn → readiness line, from the provisioner's "guest ready" line).
 * At once, ten TCG guests share two cores and every step of the control plane waits for CPU behind
 * them; one by one, a step waits only behind the guests already up, as on a host where KVM, not TCG,
 * runs the guests.
 */
async function qemuPhase(label: string, clients: number, perClient: number): Promise<void> {
  const bootMs = new Map<string, number>();
  const qemu = await phase(
    label,
    { MIKROM_DRIVER: "qemu", PROVISIONER_CONCURRENCY: "10", LOG_LEVEL: "info" },
    clients,
    { seconds: (QEMU_LIMIT_MS * perClient) / 1000, perClient },
    (service, line) => {
      if (service !== "provisioner" || !line.includes('"guest ready"')) return;
      const entry = JSON.parse(line) as { vm_id: string; boot_ms: number };
      bootMs.set(entry.vm_id, entry.boot_ms);
    },
  );
  process.stdout.write(`${rows.at(-1)}\n`);
  const added = [...(qemu.byVm ?? [])]
    .filter(([vmId]) => bootMs.has(vmId))
    .map(([vmId, ms]) => ms - bootMs.get(vmId)!)
    .sort((a, b) => a - b);
  const boots = [...bootMs.values()].sort((a, b) => a - b);
  process.stdout.write(
    `${label}: the guests' own boot p50 ${percentile(boots, 50)} ms; create→running minus it, per VM (${added.length}): p50 ${percentile(added, 50).toFixed(0)} ms, max ${added.at(-1)?.toFixed(0)} ms (target p50 < 250)\n`,
  );
}

try {
  process.stdout.write(
    `${["driver".padEnd(22), "clients", "  VMs", "failed", "     s", "    VMs/s", " p50 ms", " p99 ms"].join(" ")}\n`,
  );
  const fake = { MIKROM_DRIVER: "fake", PROVISIONER_CONCURRENCY: "16" };
  // Traced and untraced in the order ABBA: each phase leaves the database and the machine busier
  // for the next (checkpoints, vacuum), which a plain A-then-B order counted against B.
  const runs = { traced: [] as Run[], untraced: [] as Run[] };
  for (const [i, kind] of (["traced", "untraced", "untraced", "traced"] as const).entries()) {
    const env = kind === "traced" ? { ...fake, ...infra.tracingOn } : fake;
    const label = `fake, ${kind === "traced" ? "traced" : "no tracing"} (${i < 2 ? 1 : 2})`;
    runs[kind].push(await phase(label, env, CLIENTS, { seconds: FAKE_SECONDS }));
    process.stdout.write(`${rows.at(-1)}\n`);
  }
  const rateOf = (of: Run[]): number =>
    of.reduce((n, r) => n + r.vms, 0) / of.reduce((s, r) => s + r.seconds, 0);
  if (existsSync("/usr/bin/qemu-system-x86_64") && process.argv[4] !== "fake-only") {
    await qemuPhase("qemu (10 VMs at once)", QEMU_VMS, 1);
    await qemuPhase("qemu (10, one by one)", 1, QEMU_VMS);
  } else {
    process.stdout.write("qemu: skipped (not installed, or fake-only)\n");
  }
  process.stdout.write(
    "create→running as the client sees it: POST /api/v1/vms, then GET …/wait?status=running (every service a process, loopback)\n",
  );
  process.stdout.write(
    `fake, traced: ${(rateOf(runs.traced) / 150).toFixed(2)}× the 150 VMs/s target; ${(rateOf(runs.traced) / rateOf(runs.untraced)).toFixed(2)}× the same run without tracing (both phases of each)\n`,
  );
  process.stdout.write(`what each VM cost:\n${costs.join("\n")}\n`);
  process.stdout.write(`median gaps between a VM's events (last 20 VMs):\n  ${steps.join("\n  ")}\n`);
  if (problems.length > 0) {
    process.stdout.write(
      `${problems.length} ERROR lines from the services; the first:\n${problems.slice(0, 3).join("\n")}\n`,
    );
  }
} finally {
  await infra.close();
}
