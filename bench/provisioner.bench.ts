/**
 * Provisioner benchmark: qemu microVM boot latency (spawn to the guest's readiness line) and
 * resident memory of an idle guest, under TCG and, when the KVM probe says it works here, KVM.
 * Bounded in time: boots go on until BUDGET_MS is spent (at least 3). No network traffic: guests
 * get a user-mode network restricted to nothing.
 *   node_modules/.bin/node bench/provisioner.bench.ts
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { setLogDestination } from "@mikrom/telemetry";
import type { Accel } from "../services/provisioner/src/drivers/qemu/args.ts";
import { QemuDriver } from "../services/provisioner/src/drivers/qemu/driver.ts";
import { buildGuest, defaultGuestDir, type Guest } from "../services/provisioner/src/drivers/qemu/guest.ts";
import { hostTscKhz } from "../services/provisioner/src/drivers/qemu/host-clock.ts";
import { probeKvm } from "../services/provisioner/src/drivers/qemu/kvm-probe.ts";

const BUDGET_MS = 20_000;
const MIN_BOOTS = 3;
const IDLE_SETTLE_MS = 2_000;

setLogDestination({ write: () => true });

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? Number.NaN) / 1024;
}

async function measure(guest: Guest, accel: Accel): Promise<{ boots: number[]; rss: number }> {
  const runDir = await mkdtemp(join(tmpdir(), "mkb-"));
  const driver = new QemuDriver({ guest, accel, runDir, tscKhz: await hostTscKhz() });
  const spec = (i: number) => ({
    vmId: `bench-${i}`,
    vcpuCount: 1,
    memoryMb: 128,
    ipAddress: "10.99.0.2",
    prefixLength: 24,
  });
  try {
    const boots: number[] = [];
    const started = Date.now();
    let rss = Number.NaN;
    for (let i = 0; boots.length < MIN_BOOTS || Date.now() - started < BUDGET_MS; i++) {
      const vm = await driver.boot(spec(i));
      boots.push(vm.bootMs ?? Number.NaN);
      if (i === 0) {
        await delay(IDLE_SETTLE_MS);
        rss = await rssMiB(vm.pid!);
      }
      await driver.destroy(vm);
    }
    return { boots, rss };
  } finally {
    await driver.close();
    await rm(runDir, { recursive: true, force: true });
  }
}

const guest = await buildGuest(defaultGuestDir(process.env)).catch((error: Error) => {
  process.stdout.write(`provisioner bench: no guest (${error.message.split("\n")[0]}); nothing measured\n`);
  process.exit(0);
});
const kvm = await probeKvm({ guest, runDir: join(tmpdir(), "mikrom-bench-probe") });
const modes: Accel[] = kvm.usable ? ["kvm", "tcg"] : ["tcg"];

process.stdout.write(
  `qemu microvm, 1 vCPU, 128 MiB guest; KVM ${kvm.usable ? "usable" : "not usable"}: ${kvm.reason}\n`,
);
process.stdout.write("accel  boots  boot p50 ms  boot p99 ms  min ms  max ms  idle RSS MiB\n");
for (const accel of modes) {
  const { boots, rss } = await measure(guest, accel);
  const sorted = [...boots].sort((a, b) => a - b);
  process.stdout.write(
    `${accel.padEnd(5)}  ${String(boots.length).padStart(5)}  ${String(percentile(sorted, 50)).padStart(11)}  ${String(
      percentile(sorted, 99),
    ).padStart(
      11,
    )}  ${String(sorted[0]).padStart(6)}  ${String(sorted.at(-1)).padStart(6)}  ${rss.toFixed(0).padStart(12)}\n`,
  );
}
