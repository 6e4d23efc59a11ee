/**
 * `npm run bench [name…]`: runs each benchmark in bench/ (or the named ones) as its own process,
 * one after another so they do not compete for the two cores, and prints their figures.
 */
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";

const dir = join(import.meta.dirname, "..", "bench");
const wanted = process.argv.slice(2);
const files = readdirSync(dir)
  .filter((f) => f.endsWith(".bench.ts"))
  .filter((f) => wanted.length === 0 || wanted.some((w) => f.startsWith(w)))
  .sort();

let failed = 0;
for (const file of files) {
  process.stdout.write(`\n== ${file.replace(/\.bench\.ts$/, "")} ==\n`);
  const { status } = spawnSync(process.execPath, [join(dir, file)], { stdio: "inherit", env: process.env });
  if (status !== 0) {
    failed++;
    process.stdout.write(`${file} failed (exit ${status})\n`);
  }
}
process.exit(failed === 0 ? 0 : 1);
