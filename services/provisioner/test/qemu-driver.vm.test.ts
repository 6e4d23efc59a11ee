import { execFile, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { access, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { guestCgroupsFor, HYPERVISOR_ALLOWANCE_MB } from "../src/drivers/cgroup.ts";
import { driverConfigFromEnv } from "../src/drivers/config.ts";
import { guestFenceFor } from "../src/drivers/guest-fence.ts";
import { GuestUsers, parseUidRange } from "../src/drivers/guest-users.ts";
import { BootFailed, type BootSpec, BootTimeout, type Instance, QemuDriver } from "../src/drivers/index.ts";
import { addNetns, canManageNetwork, deleteNetns, ensureBridge, linkExists } from "../src/drivers/network.ts";
import { isAlive } from "../src/drivers/process.ts";
import { pingOnce } from "./support/ping.ts";
import { uidOf } from "./support/proc-ids.ts";
import { processesMentioning, qemuTestEnv } from "./support/qemu-env.ts";

/**
 * Real microVMs: qemu-system-x86_64 -M microvm with the guest from guest/build.sh, under KVM when
 * the probe says it works here and under TCG otherwise. One guest per test (TCG is CPU-bound on
 * a shared two-core machine); ten at once is bench/provisioner-burst.bench.ts.
 */
const env = await qemuTestEnv();
const skip = "skip" in env ? env.skip : undefined;
const BOOT_AGENT = join(dirname(fileURLToPath(import.meta.url)), "support/boot-agent.ts");
const VM_TEST_TIMEOUT = 120_000;
const run = promisify(execFile);

const runDirs: string[] = [];
async function runDir(): Promise<string> {
  // Short: the QMP socket path must fit a unix socket address.
  const dir = await mkdtemp(join(tmpdir(), "mkq-"));
  runDirs.push(dir);
  return dir;
}
afterAll(async () => {
  for (const dir of runDirs) {
    for (const pid of await processesMentioning(dir)) process.kill(pid, "SIGKILL");
    await rm(dir, { recursive: true, force: true });
  }
});

function options(
  dir: string,
  extra: Record<string, unknown> = {},
): ConstructorParameters<typeof QemuDriver>[0] {
  if ("skip" in env) throw new Error(env.skip);
  return { guest: env.guest, accel: env.accel, runDir: dir, tscKhz: env.tscKhz, ...extra };
}

/** Runs the boot-agent in its own process group and returns the record it printed. */
async function bootInAgent(dir: string, spec: BootSpec): Promise<{ agentPid: number; record: Instance }> {
  const agent = spawn(process.execPath, [BOOT_AGENT, JSON.stringify(options(dir)), JSON.stringify(spec)], {
    detached: true,
    stdio: ["ignore", "pipe", "inherit"],
  });
  let output = "";
  const record = await new Promise<Instance>((resolve, reject) => {
    agent.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString("utf8");
      const line = output.split("\n").find((l) => l.startsWith("RECORD ") || l.startsWith("FAILED "));
      if (line?.startsWith("RECORD ")) resolve(JSON.parse(line.slice(7)) as Instance);
      if (line?.startsWith("FAILED ")) reject(new Error(`agent: ${line}`));
    });
    agent.on("exit", (code) => reject(new Error(`agent exited with ${code} before booting: ${output}`)));
  });
  return { agentPid: agent.pid!, record };
}

describe(`the qemu driver with real guests (${"skip" in env ? `skipped: ${env.skip}` : env.accel})`, () => {
  it(
    "boots a guest that reports its address, survives its agent's SIGKILL, is adopted, stopped and destroyed without a trace",
    async (ctx) => {
      if (skip) ctx.skip(skip);
      const dir = await runDir();
      const spec: BootSpec = {
        vmId: "srv-0000e001",
        vcpuCount: 1,
        memoryMb: 128,
        ipAddress: "10.88.4.21",
        prefixLength: 24,
        gateway: "10.88.4.1",
      };
      const { agentPid, record } = await bootInAgent(dir, spec);
      expect(record).toMatchObject({ driver: "qemu", vmId: spec.vmId, ipAddress: "10.88.4.21" });
      expect(record.accel).toBe(options(dir).accel);

      // Fenced: a root agent's guest runs as nobody, never as root.
      if (process.getuid?.() === 0) expect(await uidOf(record.pid!)).toBe(uidOfNobody());
      // The agent dies with its whole process group; the VM must not.
      process.kill(-agentPid, "SIGKILL");
      await expect.poll(() => isAlive(agentPid), { timeout: 5000 }).toBe(false);
      expect(await isAlive(record.pid!)).toBe(true);

      const driver = new QemuDriver(options(dir));
      // Without the agent's record too: the VM's folder says what runs there.
      expect(await driver.find("srv-0000e001")).toEqual({ status: "running", instance: record });
      const adopted = await driver.adopt(JSON.parse(JSON.stringify(record)));
      expect(adopted.status).toBe("running");
      // The guest printed the address it was given, as eth0 holds it; the driver read that line.
      expect(await driver.console(adopted.instance)).toContain(
        "MIKROM-READY vm=srv-0000e001 ip=10.88.4.21/24",
      );

      await driver.stop(adopted.instance);
      expect(await isAlive(record.pid!)).toBe(false);
      expect(await driver.status(adopted.instance)).toBe("stopped");
      expect(await driver.console(adopted.instance)).toContain("MIKROM-POWEROFF");

      expect((await driver.find("srv-0000e001"))?.status).toBe("stopped");
      await driver.destroy(adopted.instance);
      expect(await driver.status(adopted.instance)).toBe("gone");
      expect(await driver.find("srv-0000e001")).toBeUndefined();
      await expect(access(record.qmpSocket!)).rejects.toThrow();
      await expect(access(record.runDir)).rejects.toThrow();
      expect(await processesMentioning(dir)).toEqual([]);
      await driver.close();
    },
    VM_TEST_TIMEOUT,
  );

  it(
    "gives the guest a fenced tap on a bridge in a private network namespace, where it answers ping, and removes the tap and its fence",
    async (ctx) => {
      if (skip) ctx.skip(skip);
      if (!(await canManageNetwork())) ctx.skip("needs root and /dev/net/tun to create taps");
      const netns = `mt-${process.pid}-${Date.now() % 100_000}`;
      await addNetns(netns);
      try {
        await ensureBridge({ name: "br0", address: "10.77.0.1/24", netns });
        const dir = await runDir();
        // The guest's frames pass the fence only if QEMU gives its NIC the MAC the fence allows.
        const { fence } = await guestFenceFor("on", "br0", { runDir: dir, netns });
        const driver = new QemuDriver(options(dir, { bridge: "br0", netns, fence }));
        const vm = await driver.boot({
          vmId: "srv-0000e002",
          vcpuCount: 1,
          memoryMb: 128,
          ipAddress: "10.77.0.2",
          prefixLength: 24,
          gateway: "10.77.0.1",
          tap: "mk-0000e002",
        });
        expect(await linkExists("mk-0000e002", netns)).toBe(true);
        // The tap lives in the namespace only, never on the host.
        expect(await linkExists("mk-0000e002")).toBe(false);
        await expect.poll(() => pingOnce(netns, "10.77.0.2"), { timeout: 20_000, interval: 200 }).toBe(true);
        await driver.destroy(vm);
        expect(await linkExists("mk-0000e002", netns)).toBe(false);
        const { stdout } = await run("ip", [
          "netns",
          "exec",
          netns,
          "nft",
          "list",
          "set",
          "bridge",
          "mikrom",
          "guest_ports",
        ]);
        expect(stdout).not.toContain("mk-0000e002");
        expect(await isAlive(vm.pid!)).toBe(false);
        await driver.close();
      } finally {
        await deleteNetns(netns);
      }
    },
    VM_TEST_TIMEOUT,
  );

  it(
    "runs a guest in a cgroup of its own, with the VM's vCPUs and memory, and leaves none behind",
    async (ctx) => {
      if (skip) ctx.skip(skip);
      const { cgroups, reason } = await guestCgroupsFor("auto");
      if (!cgroups) ctx.skip(reason);
      const driver = new QemuDriver(options(await runDir(), { cgroups }));
      const vm = await driver.boot({
        vmId: "srv-0000e006",
        vcpuCount: 1,
        memoryMb: 128,
        ipAddress: "10.0.9.6",
        prefixLength: 24,
      });
      try {
        expect(await readFile(`/proc/${vm.pid}/cgroup`, "utf8")).toContain("/mikrom/srv-0000e006");
        const limits = await Promise.all(
          cgroups!.dirs("srv-0000e006").flatMap((dir) =>
            ["cpu.max", "cpu.cfs_quota_us", "memory.max", "memory.limit_in_bytes"].map((file) =>
              readFile(join(dir, file), "utf8").then(
                (text) => `${file}=${text.trim()}`,
                () => undefined,
              ),
            ),
          ),
        );
        const bytes = (128 + HYPERVISOR_ALLOWANCE_MB) * 1024 * 1024;
        expect(limits.filter(Boolean).sort()).toEqual(
          cgroups!.dirs("x").length === 1
            ? ["cpu.max=100000 100000", `memory.max=${bytes}`]
            : ["cpu.cfs_quota_us=100000", `memory.limit_in_bytes=${bytes}`],
        );
      } finally {
        await driver.destroy(vm);
        await driver.close();
      }
      for (const dir of cgroups!.dirs("srv-0000e006")) await expect(access(dir)).rejects.toThrow();
    },
    VM_TEST_TIMEOUT,
  );

  it(
    "runs each guest as a user of its own, never one shared by two, and gives a destroyed VM's user to the next",
    async (ctx) => {
      if (skip) ctx.skip(skip);
      if (process.getuid?.() !== 0) ctx.skip("QEMU changes user only for a root agent");
      const dir = await runDir();
      const driver = new QemuDriver(
        options(dir, {
          guestUsers: new GuestUsers(
            { first: parseUidRange(driverConfigFromEnv({}).guestUids)!.first, count: 2 },
            dir,
          ),
        }),
      );
      const spec = (n: number): BootSpec => ({
        vmId: `srv-0000e00${n}`,
        vcpuCount: 1,
        memoryMb: 128,
        ipAddress: `10.0.9.${n}`,
        prefixLength: 24,
      });
      const [a, b] = await Promise.all([driver.boot(spec(7)), driver.boot(spec(8))]);
      try {
        const uids = [await uidOf(a.pid!), await uidOf(b.pid!)];
        expect(uids.sort()).toEqual([1_900_000_000, 1_900_000_001]);
        expect([a.guestUid, b.guestUid].sort()).toEqual([1_900_000_000, 1_900_000_001]);
        // Every uid held: the boot is refused and leaves nothing behind.
        await expect(driver.boot(spec(9))).rejects.toMatchObject({ step: "prepare" });
        await expect(access(join(dir, "srv-0000e009"))).rejects.toThrow();
        await driver.destroy(a);
        const c = await driver.boot(spec(9));
        expect(await uidOf(c.pid!)).toBe(a.guestUid);
        await driver.destroy(c);
      } finally {
        await driver.destroy(b);
        await driver.close();
      }
    },
    VM_TEST_TIMEOUT,
  );

  it("fails a boot that misses its deadline with BootTimeout at the readiness step, and kills it", async (ctx) => {
    if (skip) ctx.skip(skip);
    const dir = await runDir();
    const driver = new QemuDriver(options(dir, { bootTimeoutMs: 300 }));
    const error = await driver
      .boot({ vmId: "srv-0000e003", vcpuCount: 1, memoryMb: 128, ipAddress: "10.0.9.2", prefixLength: 24 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BootTimeout);
    expect(error).toMatchObject({ step: "readiness" });
    expect(await processesMentioning(dir)).toEqual([]);
    await expect(access(join(dir, "srv-0000e003"))).rejects.toThrow();
    await driver.close();
  });

  it("fails at the spawn step with qemu's own error when qemu cannot start the VM", async (ctx) => {
    if (skip) ctx.skip(skip);
    const dir = await runDir();
    const badKernel = new QemuDriver({
      ...options(dir),
      guest: { kernel: join(dir, "no-such-vmlinux"), initramfs: join(dir, "no-such-initramfs") },
    });
    const error = await badKernel
      .boot({ vmId: "srv-0000e004", vcpuCount: 1, memoryMb: 128, ipAddress: "10.0.9.2", prefixLength: 24 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BootFailed);
    expect(error).toMatchObject({ step: "spawn" });
    expect((error as BootFailed).consoleTail).toMatch(/no-such-vmlinux/);

    const noBinary = new QemuDriver(options(dir, { binary: join(dir, "no-such-qemu") }));
    await expect(
      noBinary.boot({
        vmId: "srv-0000e005",
        vcpuCount: 1,
        memoryMb: 128,
        ipAddress: "10.0.9.2",
        prefixLength: 24,
      }),
    ).rejects.toMatchObject({ step: "spawn" });
  });
});

/** nobody's uid on this machine, from /etc/passwd. */
function uidOfNobody(): number {
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith("nobody:"));
  return Number(line?.split(":")[2]);
}
