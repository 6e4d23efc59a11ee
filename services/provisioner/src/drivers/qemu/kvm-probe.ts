import { execFile } from "node:child_process";
import { access, constants, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { release } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { z } from "zod";
import { BootFailed, BootTimeout } from "../errors.ts";
import { ensureDir } from "../run-dir.ts";
import { QemuDriver } from "./driver.ts";
import type { Guest } from "./guest.ts";

/**
 * Whether KVM can boot the guest here. /dev/kvm opening is not enough: on these machines it is
 * PVM (nested, paravirtualized) and a stock kernel hangs right after the boot loader. So boot the
 * guest once under KVM with a short deadline, and remember the verdict per host kernel, guest and
 * qemu binary (the probe costs its deadline when KVM does not work).
 */

const KvmVerdict = z.object({
  usable: z.boolean(),
  reason: z.string(),
  key: z.string(),
  probedAt: z.string(),
  bootMs: z.number().optional(),
});
export type KvmVerdict = z.infer<typeof KvmVerdict> & { cached: boolean };

export interface KvmProbeOptions {
  guest: Guest;
  /** Scratch folder for the probe VM. */
  runDir: string;
  binary?: string;
  timeoutMs?: number;
  /** Default: kvm-probe.json in the guest folder. */
  cacheFile?: string;
  /** Probe again even when a verdict is cached. */
  fresh?: boolean;
}

export async function probeKvm(options: KvmProbeOptions): Promise<KvmVerdict> {
  const binary = options.binary ?? "qemu-system-x86_64";
  const timeoutMs = options.timeoutMs ?? 10_000;
  const now = new Date().toISOString();
  try {
    await access("/dev/kvm", constants.R_OK | constants.W_OK);
  } catch {
    return {
      usable: false,
      reason: "/dev/kvm is missing or not accessible",
      key: "",
      probedAt: now,
      cached: false,
    };
  }
  const key = `${release()}|${options.guest.stamp}|${await qemuVersion(binary)}`;
  const cacheFile = options.cacheFile ?? join(options.guest.dir, "kvm-probe.json");
  if (!options.fresh) {
    const cached = await readFile(cacheFile, "utf8").then(
      (text) => KvmVerdict.safeParse(JSON.parse(text)),
      () => undefined,
    );
    if (cached?.success && cached.data.key === key) return { ...cached.data, cached: true };
  }

  await ensureDir(options.runDir);
  const scratch = await mkdtemp(join(options.runDir, "kvm-probe-"));
  const driver = new QemuDriver({
    guest: options.guest,
    accel: "kvm",
    runDir: scratch,
    binary,
    bootTimeoutMs: timeoutMs,
  });
  let verdict: z.infer<typeof KvmVerdict>;
  try {
    const vm = await driver.boot({
      vmId: "kvm-probe",
      vcpuCount: 1,
      memoryMb: 128,
      // TEST-NET-1 on a user-mode network restricted to nothing: never routed anywhere.
      ipAddress: "192.0.2.2",
      prefixLength: 24,
    });
    await driver.destroy(vm);
    verdict = {
      usable: true,
      reason: `a probe boot under KVM reached readiness in ${vm.bootMs} ms`,
      key,
      probedAt: now,
      ...(vm.bootMs !== undefined ? { bootMs: vm.bootMs } : {}),
    };
  } catch (error) {
    const why =
      error instanceof BootTimeout
        ? `no readiness within ${timeoutMs} ms (a stock kernel hangs under nested PVM KVM)`
        : error instanceof BootFailed
          ? `${error.message}${lastLine(error.consoleTail)}`
          : String(error);
    verdict = { usable: false, reason: `a probe boot under KVM failed: ${why}`, key, probedAt: now };
  } finally {
    await driver.close();
    await rm(scratch, { recursive: true, force: true });
  }
  await writeFile(cacheFile, JSON.stringify(verdict, null, 2)).catch(() => {});
  return { ...verdict, cached: false };
}

/** The last non-empty line of a console tail, as ": <line>", to say why qemu gave up. */
function lastLine(tail: string): string {
  const line = tail
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .at(-1);
  return line ? `: ${line}` : "";
}

/** The binary's version line: the same qemu reached by another path must share the verdict. */
async function qemuVersion(binary: string): Promise<string> {
  const { stdout } = await promisify(execFile)(binary, ["--version"]).catch(() => ({ stdout: binary }));
  return stdout.split("\n")[0]?.trim() || binary;
}
