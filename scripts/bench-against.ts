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
  /** CPU ms per VM summed over every process (bench/costs.ts), the mean of the phases. */
  cpuMs: number;
  /** PostgreSQL's share of it. */
  pgMs: number;
}

/** One fake-driver e2e run in `tree`, read off its "fake" rows. */
function run(tree: string): Figures {
  // The same Node.js for both trees, so that only the code differs.
  const bench = join(tree, "bench", "e2e.bench.ts");
  const out = spawnSync(process.execPath, [bench, clients, seconds, "fake-only"], {
    cwd: tree,
    encoding: "utf8",
  });
  // Every fake-driver row of the table (seven figures after the label), traced and not: the two
  // trees run the same phases, so their means compare.
  const rows = out.stdout
    .split("\n")
    .filter((line) => line.startsWith("fake"))
    .map((line) => line.slice(22).trim().split(/\s+/).map(Number))
    .filter((cells) => cells.length === 7 && cells.every(Number.isFinite));
  const cpuLines = [...out.stdout.matchAll(/^fake[^\n]*:\n\s+CPU ms per VM: ([^\n]+)/gm)].map((m) => m[1]!);
  const cpu = cpuLines.map((line) => Number.parseFloat(line));
  const pg = cpuLines.map((line) => Number(/postgresql ([\d.]+)/.exec(line)?.[1]));
  if (out.status !== 0 || rows.length === 0 || cpu.length === 0 || !pg.every(Number.isFinite))
    throw new Error(`the benchmark failed in ${tree}:\n${out.stdout}${out.stderr}`);
  // clients, VMs, failed, seconds, VMs/s, p50, p99.
  const column = (i: number): number => mean(rows.map((cells) => cells[i]!));
  return {
    vmsPerSecond: column(4),
    p50: Math.round(column(5)),
    p99: Math.round(column(6)),
    cpuMs: mean(cpu),
    pgMs: mean(pg),
  };
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const show = (f: Figures): string =>
  `${f.vmsPerSecond.toFixed(1)} VMs/s (p50 ${f.p50}, p99 ${f.p99} ms, ${f.cpuMs.toFixed(1)} CPU ms/VM, PostgreSQL ${f.pgMs.toFixed(1)})`;

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
  const rp = mean(refs.map((f) => f.pgMs));
  const hp = mean(heads.map((f) => f.pgMs));
  process.stdout.write(
    `mean of ${pairs} pairs, ${clients} clients, ${seconds} s: ${ref} ${r.toFixed(1)} VMs/s, ${rc.toFixed(1)} CPU ms/VM · ` +
      `this tree ${h.toFixed(1)} VMs/s, ${hc.toFixed(1)} CPU ms/VM · ${(h / r).toFixed(2)}× the VMs/s, ${(hc / rc).toFixed(2)}× the CPU, ` +
      `${(hp / rp).toFixed(2)}× PostgreSQL's (${rp.toFixed(1)} → ${hp.toFixed(1)} ms/VM)\n`,
  );
} finally {
  spawnSync("git", ["worktree", "remove", "--force", there], { cwd: here, stdio: "ignore" });
  rmSync(there, { recursive: true, force: true });
}
