/**
 * `npm run bench:against -- <git ref> [pairs=4] [clients=64] [seconds=15]`: the e2e benchmark
 * (fake driver) for this working tree and for `ref`, side by side in one run. The ref is checked out
 * into a temporary worktree with its own `npm ci`; the two then run in alternating pairs (the order
 * swapped every pair), because this machine drifts by ±20 % between runs and a ratio of two runs
 * minutes apart says little. Prints each pair, and the ratio of the means.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [ref, pairsArg = "4", clients = "64", seconds = "15"] = process.argv.slice(2);
if (!ref) {
  process.stderr.write("usage: npm run bench:against -- <git ref> [pairs=4] [clients=64] [seconds=15]\n");
  process.exit(2);
}
const pairs = Number(pairsArg);
const here = join(import.meta.dirname, "..");
const there = mkdtempSync(join(tmpdir(), "mikrom-bench-against-"));

interface Figures {
  vmsPerSecond: number;
  p50: number;
  p99: number;
  /** CPU ms per VM summed over every process (bench/costs.ts), without tracing. */
  cpuMs: number;
}

/** One fake-driver e2e run in `tree`, read off its "fake" row. */
function run(tree: string): Figures {
  // The same Node.js for both trees, so that only the code differs.
  const bench = join(tree, "bench", "e2e.bench.ts");
  const out = spawnSync(process.execPath, [bench, clients, seconds, "fake-only"], {
    cwd: tree,
    encoding: "utf8",
  });
  // The last row of the table (seven figures after the label) for the fake driver: the run
  // without tracing, in a tree whose benchmark also runs one traced.
  const figures = out.stdout
    .split("\n")
    .filter((line) => line.startsWith("fake"))
    .map((line) => line.slice(22).trim().split(/\s+/).map(Number))
    .findLast((cells) => cells.length === 7 && cells.every(Number.isFinite));
  if (out.status !== 0 || !figures)
    throw new Error(`the benchmark failed in ${tree}:\n${out.stdout}${out.stderr}`);
  // clients, VMs, failed, seconds, VMs/s, p50, p99.
  const [, , , , vmsPerSecond, p50, p99] = figures;
  const cpuMs = Number(/fake, no tracing:\n\s+CPU ms per VM: ([\d.]+)/.exec(out.stdout)?.[1]);
  return { vmsPerSecond: vmsPerSecond!, p50: p50!, p99: p99!, cpuMs };
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const show = (f: Figures): string =>
  `${f.vmsPerSecond.toFixed(1)} VMs/s (p50 ${f.p50}, p99 ${f.p99} ms, ${f.cpuMs} CPU ms/VM)`;

try {
  const commit = execFileSync("git", ["rev-parse", "--short", ref], { cwd: here, encoding: "utf8" }).trim();
  execFileSync("git", ["worktree", "add", "--detach", there, ref], { cwd: here, stdio: "ignore" });
  process.stdout.write(`reference ${ref} (${commit}) in ${there}: npm ci…\n`);
  execFileSync("npm", ["ci", "--no-audit", "--no-fund"], { cwd: there, stdio: "ignore" });
  const refs: Figures[] = [];
  const heads: Figures[] = [];
  for (let i = 0; i < pairs; i++) {
    const order = i % 2 === 0 ? ["ref", "head"] : ["head", "ref"];
    for (const which of order) (which === "ref" ? refs : heads).push(run(which === "ref" ? there : here));
    const ratio = heads[i]!.vmsPerSecond / refs[i]!.vmsPerSecond;
    process.stdout.write(
      `pair ${i + 1}: ${ref} ${show(refs[i]!)} · this tree ${show(heads[i]!)} · ${ratio.toFixed(2)}×\n`,
    );
  }
  const r = mean(refs.map((f) => f.vmsPerSecond));
  const h = mean(heads.map((f) => f.vmsPerSecond));
  const rc = mean(refs.map((f) => f.cpuMs));
  const hc = mean(heads.map((f) => f.cpuMs));
  process.stdout.write(
    `mean of ${pairs} pairs, ${clients} clients, ${seconds} s: ${ref} ${r.toFixed(1)} VMs/s, ${rc.toFixed(1)} CPU ms/VM · ` +
      `this tree ${h.toFixed(1)} VMs/s, ${hc.toFixed(1)} CPU ms/VM · ${(h / r).toFixed(2)}× the VMs/s, ${(hc / rc).toFixed(2)}× the CPU\n`,
  );
} finally {
  spawnSync("git", ["worktree", "remove", "--force", there], { cwd: here, stdio: "ignore" });
  rmSync(there, { recursive: true, force: true });
}
