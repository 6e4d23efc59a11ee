import { followLines, readTail } from "./console-log.ts";
import type { BootSpec } from "./driver.ts";
import { BootFailed, BootTimeout } from "./errors.ts";
import { isAlive } from "./process.ts";
import { parseGuestReport } from "./readiness.ts";
import type { VmPaths } from "./run-dir.ts";

/** The end of the console, and the hypervisor's own error output when it wrote any. */
export async function consoleTails(
  paths: Pick<VmPaths, "console" | "output">,
  label: string,
): Promise<string> {
  const [console, output] = await Promise.all([readTail(paths.console, 4096), readTail(paths.output, 2048)]);
  return output.trim() ? `${console}\n--- ${label} ---\n${output}` : console;
}

/**
 * Follows the console until the guest reports ready with the address it was given. Throws
 * BootFailed (the guest reported a failure or another address, or the hypervisor exited) or
 * BootTimeout at the deadline; an abort rethrows the signal's reason.
 */
export async function awaitGuestReady(options: {
  spec: Pick<BootSpec, "vmId" | "ipAddress" | "prefixLength">;
  pid: number;
  paths: Pick<VmPaths, "console" | "output">;
  timeoutMs: number;
  hypervisor: string;
  signal?: AbortSignal | undefined;
}): Promise<void> {
  const { spec, pid, paths, timeoutMs, hypervisor, signal } = options;
  const expected = `${spec.ipAddress}/${spec.prefixLength}`;
  const outcome = await followLines(paths.console, {
    match: (line) => {
      const report = parseGuestReport(line);
      return report && report.vmId === spec.vmId ? report : undefined;
    },
    timeoutMs,
    alive: () => isAlive(pid),
    ...(signal ? { signal } : {}),
  });
  switch (outcome.kind) {
    case "match": {
      const report = outcome.value;
      if (report.kind === "failed") {
        throw new BootFailed(
          "readiness",
          `guest ${report.step}: ${report.reason}`,
          await consoleTails(paths, hypervisor),
        );
      }
      if (report.ip !== expected) {
        throw new BootFailed(
          "readiness",
          `guest holds ${report.ip}, expected ${expected}`,
          await consoleTails(paths, hypervisor),
        );
      }
      return;
    }
    case "exited": {
      const started = (await readTail(paths.console, 1)).length > 0;
      throw new BootFailed(
        started ? "readiness" : "spawn",
        `${hypervisor} exited`,
        await consoleTails(paths, hypervisor),
      );
    }
    case "timeout":
      throw new BootTimeout("readiness", timeoutMs, await consoleTails(paths, hypervisor));
    case "aborted":
      throw outcome.reason;
  }
}
