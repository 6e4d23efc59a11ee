import { rm } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { DEFAULTS, runChaos } from "../scripts/chaos/run.ts";

/**
 * The chaos suite in CI: 60 s of faults under load against one private nats-server and a private
 * PostgreSQL, a bounded settle, and not one violation. The seed is printed: `npm run chaos -- --seed N
 * --duration 60` repeats the run.
 */
describe("chaos", () => {
  it("rides out 60 s of killed, restarted and paused services, NATS and PostgreSQL with no violation", {
    timeout: 225_000,
  }, async () => {
    const seed = Math.floor(Math.random() * 1_000_000);
    const result = await runChaos({
      ...DEFAULTS,
      seed,
      durationS: 60,
      settleS: 40,
      freshTimeoutS: 25,
      // Ends the run (and stops everything it started) before the test's own timeout would.
      signal: AbortSignal.timeout(205_000),
      progress: (line) => process.stderr.write(`${line}\n`),
    });
    process.stdout.write(`${result.summary}\nreport: ${result.reportFile}\n`);
    const violations = result.verdict.violations.map(
      (v) => `${v.kind}: ${JSON.stringify(v.detail).slice(0, 300)}`,
    );
    expect(violations, `${result.summary}\nreport: ${result.reportFile}`).toEqual([]);
    await rm(result.reportDir, { recursive: true, force: true });
  });
});
