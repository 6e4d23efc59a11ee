/**
 * `npm run chaos [-- flags]`: the whole system as real processes under random load and random
 * faults, then the invariants; prints one summary line and the report's path, exits 1 on any
 * violation (2 when the run itself failed).
 *
 *   --seed N        the randomness (default: drawn, and printed); the same seed repeats the schedule
 *   --duration S    the fault period in seconds (default 90)
 *   --settle S      the longest wait for no VM in a transitional status (default 120)
 *   --cluster       a three-node JetStream cluster, R3 streams, nodes killed one at a time
 *   --users N       users (default 6)      --workers N   workers per user (default 8)
 *   --latency A-B   the fake driver's boot latency in ms (default 50-400)
 *   --report FILE   the JSON report (default: report.json in a new temp folder, with the logs)
 *   --quiet         no progress lines on stderr
 */
import { parseArgs } from "node:util";
import { DEFAULTS, runChaos } from "./run.ts";

const { values } = parseArgs({
  options: {
    seed: { type: "string" },
    duration: { type: "string" },
    settle: { type: "string" },
    cluster: { type: "boolean", default: false },
    users: { type: "string" },
    workers: { type: "string" },
    latency: { type: "string" },
    report: { type: "string" },
    quiet: { type: "boolean", default: false },
  },
});

function int(name: string, text: string | undefined, fallback: number, min = 1): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) {
    process.stderr.write(`--${name} must be an integer >= ${min}, not ${text}\n`);
    process.exit(2);
  }
  return n;
}

const controller = new AbortController();
let interrupts = 0;
for (const sig of ["SIGINT", "SIGTERM"] as const)
  process.on(sig, () => {
    interrupts += 1;
    if (interrupts > 1) process.exit(130);
    process.stderr.write("interrupted: stopping everything the run started (again to quit at once)\n");
    controller.abort();
  });

const seed = int("seed", values.seed, Math.floor(Math.random() * 1_000_000), 0);
process.stderr.write(`chaos: seed ${seed}\n`);
try {
  const result = await runChaos({
    ...DEFAULTS,
    seed,
    durationS: int("duration", values.duration, DEFAULTS.durationS),
    settleS: int("settle", values.settle, DEFAULTS.settleS),
    cluster: values.cluster ?? false,
    users: int("users", values.users, DEFAULTS.users),
    workers: int("workers", values.workers, DEFAULTS.workers),
    latencyMs: values.latency ?? DEFAULTS.latencyMs,
    ...(values.report !== undefined && { reportFile: values.report }),
    signal: controller.signal,
    ...(!values.quiet && { progress: (line: string) => process.stderr.write(`${line}\n`) }),
  });
  process.stdout.write(`${result.summary}\nreport: ${result.reportFile}\n`);
  process.exit(result.pass ? 0 : 1);
} catch (error) {
  process.stderr.write(`chaos run failed: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(controller.signal.aborted ? 130 : 2);
}
