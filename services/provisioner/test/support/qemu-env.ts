import { execFile } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { Accel } from "../../src/drivers/qemu/args.ts";
import { buildGuest, defaultGuestDir, type Guest } from "../../src/drivers/qemu/guest.ts";
import { hostTscKhz } from "../../src/drivers/qemu/host-clock.ts";
import { probeKvm } from "../../src/drivers/qemu/kvm-probe.ts";

const run = promisify(execFile);
const INSTALL_DEPS = join(dirname(fileURLToPath(import.meta.url)), "../../guest/install-deps.sh");

export interface QemuTestEnv {
  guest: Guest;
  accel: Accel;
  accelReason: string;
  tscKhz: number | undefined;
}

/**
 * What the real-VM tests need: qemu (installed with guest/install-deps.sh when missing), the
 * guest (built with guest/build.sh, a no-op when cached), and the acceleration the KVM probe
 * allows (TCG where /dev/kvm is missing or unusable). `skip` says why the tests cannot run.
 */
export async function qemuTestEnv(): Promise<QemuTestEnv | { skip: string }> {
  const env = await probeQemuTestEnv();
  // CI installs qemu and builds the guest first (.ci/run): there, a missing piece is a failure, not a skip.
  if ("skip" in env && process.env.CI) throw new Error(`real-VM tests cannot run in CI: ${env.skip}`);
  return env;
}

async function probeQemuTestEnv(): Promise<QemuTestEnv | { skip: string }> {
  if (!(await hasQemu())) {
    await run("bash", [INSTALL_DEPS]).catch(() => undefined);
    if (!(await hasQemu()))
      return { skip: "qemu-system-x86_64 is missing and guest/install-deps.sh could not install it" };
  }
  let guest: Guest;
  try {
    guest = await buildGuest(defaultGuestDir(process.env));
  } catch (error) {
    return { skip: `the guest could not be built: ${(error as Error).message}` };
  }
  const verdict = await probeKvm({ guest, runDir: join(guest.dir, "probe-run") });
  return {
    guest,
    accel: verdict.usable ? "kvm" : "tcg",
    accelReason: verdict.reason,
    tscKhz: await hostTscKhz(),
  };
}

async function hasQemu(): Promise<boolean> {
  return run("qemu-system-x86_64", ["--version"]).then(
    () => true,
    () => false,
  );
}

/** Pids of live processes whose command line mentions `text` (e.g. a test's run folder). */
export async function processesMentioning(text: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    if (cmdline.includes(text) && Number(entry) !== process.pid) found.push(Number(entry));
  }
  return found;
}
