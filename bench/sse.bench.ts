/**
 * Event delivery to many Server-Sent Events clients: how long from an event being stored in the
 * events stream (its JetStream timestamp, the `timestamp` each SSE event carries) to a client having
 * parsed it. The whole system runs (bench/system.ts, fake driver), VMs are created through the REST
 * API, and each client must see exactly its own user's VMs' events.
 *
 * Two phases on one system, the same creates in each:
 *   1. the reference: one client;
 *   2. `clients` clients (default 100), `users` users (default 10) holding `clients / users` streams each.
 * It prints p50/p99/max delivery per phase and phase 2's as a ratio to phase 1's (target: p99 < 100 ms).
 *
 * The clients stamp an event when their own event loop gets to it, on the machine the services load:
 * each phase also prints how late that loop ran (p99/max of its delay) and how busy the machine's
 * CPUs were (every process on it, /proc/stat). A delivery tail as long as the loop's own is time
 * spent waiting for a CPU, not in the event path; `inFlight` 1 shows the path with the load light.
 *
 * node_modules/.bin/node bench/sse.bench.ts [clients=100] [users=10] [vms=100] [inFlight=8]
 *
 * Exits non-zero when the run breaks: a client missing an event, or shown another user's.
 */
import { readFileSync } from "node:fs";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { openSse, type SseClient } from "../services/api-gateway/test/support/sse.ts";
import { call, inBatches, openBenchInfra, percentile, userToken } from "./system.ts";

const CLIENTS = Number(process.argv[2] ?? 100);
const USERS = Number(process.argv[3] ?? 10);
const VMS = Number(process.argv[4] ?? 100);
const CREATES_IN_FLIGHT = Number(process.argv[5] ?? 8);
const DEADLINE_MS = 60_000;
const out = (line = ""): void => void process.stdout.write(`${line}\n`);

interface Phase {
  label: string;
  delaysMs: number[];
  events: number;
  /** How late the clients' event loop ran (ms): p99, max. */
  loopLateMs: [number, number];
  /** Share of the machine's CPU time busy during the phase, all processes; undefined off Linux. */
  cpuBusy: number | undefined;
}

/** Busy and total CPU time of the whole machine so far (jiffies), or undefined without /proc/stat. */
function machineCpu(): { busy: number; total: number } | undefined {
  try {
    const ticks = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
    const total = ticks.reduce((a, b) => a + b, 0);
    // idle and iowait
    return { busy: total - ticks[3]! - ticks[4]!, total };
  } catch {
    return undefined;
  }
}

/** Reads a stream until it has seen every VM in `vms` reach `running`; the delay of each event. */
async function follow(sse: SseClient, vms: Set<string>, delays: number[]): Promise<number> {
  const running = new Set<string>();
  let events = 0;
  while (running.size < vms.size) {
    const event = await sse.next(DEADLINE_MS);
    // A block with only an id moves the client's Last-Event-ID past events it is not shown.
    if (event.data === "") continue;
    const body = JSON.parse(event.data) as { vm_id: string; type: string; timestamp: string };
    if (!vms.has(body.vm_id)) throw new Error(`a stream was shown ${body.vm_id}, another user's VM`);
    delays.push(event.receivedAt - Date.parse(body.timestamp));
    events++;
    if (body.type === "VmRunning") running.add(body.vm_id);
  }
  return events;
}

async function phase(api: string, label: string, tokens: string[], perUser: number): Promise<Phase> {
  const streams = await Promise.all(
    tokens.flatMap((token) =>
      Array.from({ length: perUser }, () =>
        openSse(`${api}/api/v1/events/vms`, { authorization: `Bearer ${token}` }),
      ),
    ),
  );
  const loop = monitorEventLoopDelay({ resolution: 5 });
  let cpuBefore: ReturnType<typeof machineCpu>;
  try {
    await Promise.all(streams.map((sse) => sse.comment("connected")));
    loop.enable();
    cpuBefore = machineCpu();
    const owned = tokens.map(() => new Set<string>());
    // Every user's VMs are known before any stream is read for them: ids come from the POSTs.
    const creates = Array.from({ length: VMS }, (_, i) => i);
    const delays: number[] = [];
    const reading: Array<Promise<number>> = [];
    const made = inBatches(creates, CREATES_IN_FLIGHT, async (i) => {
      const user = i % tokens.length;
      const vm = await call(api, "POST", "/api/v1/vms", tokens[user], {
        name: `sse-${label}-${i}`,
        memory_mb: 128,
      });
      owned[user]!.add(vm.vm_id);
    });
    await made;
    streams.forEach((sse, n) => {
      reading.push(follow(sse, owned[Math.floor(n / perUser)]!, delays));
    });
    const counts = await Promise.all(reading);
    loop.disable();
    const cpuAfter = machineCpu();
    const late = (ns: number): number => Math.max(0, ns / 1e6 - 5);
    return {
      label,
      delaysMs: delays,
      events: counts.reduce((a, b) => a + b, 0),
      loopLateMs: [late(loop.percentile(99)), late(loop.max)],
      cpuBusy: cpuBefore && cpuAfter && (cpuAfter.busy - cpuBefore.busy) / (cpuAfter.total - cpuBefore.total),
    };
  } finally {
    for (const sse of streams) sse.close();
  }
}

function row(p: Phase, streams: number): string {
  const sorted = [...p.delaysMs].sort((a, b) => a - b);
  const cells = [
    p.label.padEnd(12),
    String(streams).padStart(7),
    String(p.events).padStart(7),
    percentile(sorted, 50).toFixed(0).padStart(6),
    percentile(sorted, 99).toFixed(0).padStart(6),
    sorted.at(-1)!.toFixed(0).padStart(6),
  ];
  return cells.join(" ");
}

const infra = await openBenchInfra();
const bench = await infra.start("sse", {
  MIKROM_DRIVER: "fake",
  PROVISIONER_CONCURRENCY: "16",
  MAX_SSE_PER_USER: String(CLIENTS),
});
try {
  const tokens = await inBatches(
    Array.from({ length: USERS }, (_, i) => i),
    4,
    (i) => userToken(bench.api, i),
  );
  const reference = await phase(bench.api, "reference", tokens.slice(0, 1), 1);
  const many = await phase(bench.api, "many", tokens, Math.ceil(CLIENTS / USERS));
  out(
    `${VMS} VMs created ${CREATES_IN_FLIGHT} at a time in each phase; delay = stored in the events stream → parsed by the client`,
  );
  out(
    `${"phase".padEnd(12)} ${"streams".padStart(7)} ${"events".padStart(7)} ${"p50".padStart(6)} ${"p99".padStart(6)} ${"max".padStart(6)}  (ms)`,
  );
  out(row(reference, 1));
  out(row(many, tokens.length * Math.ceil(CLIENTS / USERS)));
  const p99 = (p: Phase): number =>
    percentile(
      [...p.delaysMs].sort((a, b) => a - b),
      99,
    );
  out(
    `p99 with ${CLIENTS} streams: ${p99(many).toFixed(0)} ms (target < 100), ${(p99(many) / p99(reference)).toFixed(2)}× the one-stream reference`,
  );
  for (const p of [reference, many])
    out(
      `${p.label}: the clients' event loop ran late p99 ${p.loopLateMs[0].toFixed(0)} / max ${p.loopLateMs[1].toFixed(0)} ms; machine CPU busy ${p.cpuBusy === undefined ? "?" : `${(p.cpuBusy * 100).toFixed(0)} %`}`,
    );
  if (bench.problems.length > 0) out(`service errors:\n${bench.problems.slice(0, 20).join("\n")}`);
} finally {
  await bench.close();
  await infra.close();
}
