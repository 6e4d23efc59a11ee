/**
 * The tail under steady churn: each client creates a VM, waits for `running`, deletes it, and
 * again, for a few minutes, with fake host calls of 20–100 ms. What a user
 * feels as "sometimes it takes 30 s" shows here: the p99 and the slowest create→running, how many
 * took longer than a second and longer than 30 s, where the slowest spent their time (the gap
 * between their events), and every warning the services logged (a retry, a redelivery, a timeout).
 *
 * node_modules/.bin/node bench/churn.bench.ts [clients=32] [seconds=60] [provisioner concurrency=its default]
 */
import { call, deleteAll, inBatches, openBenchInfra, percentile, userToken } from "./system.ts";

const CLIENTS = Number(process.argv[2] ?? 32);
const SECONDS = Number(process.argv[3] ?? 60);
const SLOW_MS = 1_000;
const STUCK_MS = 30_000;
/** The provisioner's boots in flight: its default unless given. */
const CONCURRENCY = process.argv[4];
const concurrency: Record<string, string> = CONCURRENCY ? { PROVISIONER_CONCURRENCY: CONCURRENCY } : {};

interface Created {
  vmId: string;
  ms: number;
  /** Its events as `type +ms since the previous one`, kept for the slowest (a deleted VM has none to read). */
  steps?: string;
}

/** How many of the slowest creates have their events shown. */
const SHOWN = 5;

const infra = await openBenchInfra();
const warnings = new Map<string, number>();
const bench = await infra.start(
  "churn",
  { MIKROM_DRIVER: "fake", MIKROM_FAKE_LATENCY_MS: "20-100", ...concurrency },
  (service, line) => {
    if (!line.includes('"level":"WARN"')) return;
    const message = /"message":"([^"]*)"/.exec(line)?.[1] ?? line.slice(0, 120);
    const key = `${service}: ${message}`;
    warnings.set(key, (warnings.get(key) ?? 0) + 1);
  },
);
try {
  const tokens = await inBatches(
    Array.from({ length: CLIENTS }, (_, i) => i),
    8,
    (i) => userToken(bench.api, i),
  );
  const done: Created[] = [];
  const slowest: number[] = [];
  const isAmongSlowest = (ms: number): boolean => {
    slowest.push(ms);
    slowest.sort((a, b) => b - a).splice(SHOWN);
    return slowest.includes(ms);
  };
  const stepsOf = async (token: string, vmId: string): Promise<string> => {
    const { events } = await call(bench.api, "GET", `/api/v1/vms/${vmId}/events`, token);
    return events
      .map(
        (e: { type: string; recorded_at: string }, i: number) =>
          `${e.type}${i === 0 ? "" : ` +${Date.parse(e.recorded_at) - Date.parse(events[i - 1].recorded_at)}`}`,
      )
      .join(", ");
  };
  const failures: string[] = [];
  const made: Array<{ token: string; vmId: string }> = [];
  const deadline = performance.now() + SECONDS * 1000;
  await Promise.all(
    tokens.map(async (token, client) => {
      for (let i = 0; performance.now() < deadline; i++) {
        const started = performance.now();
        try {
          const vmId = (
            await call(bench.api, "POST", "/api/v1/vms", token, { name: `c${client}-${i}`, memory_mb: 128 })
          ).vm_id as string;
          made.push({ token, vmId });
          const waited = await call(
            bench.api,
            "GET",
            `/api/v1/vms/${vmId}/wait?status=running&timeout=120`,
            token,
          );
          if (!waited.reached)
            throw new Error(`${vmId} ended ${waited.vm.status}: ${waited.vm.error_message}`);
          const ms = performance.now() - started;
          done.push({ vmId, ms, ...(isAmongSlowest(ms) && { steps: await stepsOf(token, vmId) }) });
          await call(bench.api, "DELETE", `/api/v1/vms/${vmId}`, token);
        } catch (error) {
          failures.push((error as Error).message);
        }
      }
    }),
  );
  const sorted = done.map((d) => d.ms).sort((a, b) => a - b);
  const over = (ms: number): number => sorted.filter((v) => v > ms).length;
  process.stdout.write(
    `${CLIENTS} clients, ${SECONDS} s, fake host calls 20–100 ms, provisioner concurrency ${CONCURRENCY ?? "default"}: ${done.length} VMs created→running→deleted, ${failures.length} failed\n`,
  );
  process.stdout.write(
    `create→running p50 ${percentile(sorted, 50).toFixed(0)} ms, p99 ${percentile(sorted, 99).toFixed(0)} ms, ` +
      `max ${(sorted.at(-1) ?? Number.NaN).toFixed(0)} ms; over ${SLOW_MS} ms: ${over(SLOW_MS)}, over ${STUCK_MS} ms: ${over(STUCK_MS)}\n`,
  );
  for (const failure of failures.slice(0, 5)) process.stdout.write(`  failure: ${failure}\n`);
  process.stdout.write("the slowest, event by event (ms since the previous event):\n");
  for (const { vmId, ms, steps } of [...done].sort((a, b) => b.ms - a.ms).slice(0, SHOWN))
    process.stdout.write(`  ${vmId} ${ms.toFixed(0)} ms: ${steps ?? "(not kept)"}\n`);
  process.stdout.write(`warnings logged: ${warnings.size === 0 ? "none" : ""}\n`);
  for (const [key, count] of [...warnings].sort((a, b) => b[1] - a[1]).slice(0, 15))
    process.stdout.write(`  ${count}× ${key}\n`);
  if (bench.problems.length > 0)
    process.stdout.write(
      `${bench.problems.length} ERROR lines; the first:\n${bench.problems.slice(0, 3).join("\n")}\n`,
    );
  // Every VM made is deleted (again) and waited for, so that the run leaves nothing behind.
  await deleteAll(bench.api, made);
} finally {
  await bench.close();
  await infra.close();
}
