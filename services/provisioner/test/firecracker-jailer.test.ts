import {
  access,
  chmod,
  lstat,
  mkdir,
  mkdtemp,
  readFile,
  readlink,
  rm,
  rmdir,
  stat,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { GuestCgroups } from "../src/drivers/cgroup.ts";
import { firecrackerCall } from "../src/drivers/firecracker/api.ts";
import { jailerArgv } from "../src/drivers/firecracker/jail.ts";
import { GuestUsers } from "../src/drivers/guest-users.ts";
import { BootFailed, type BootSpec, FirecrackerDriver, type Instance } from "../src/drivers/index.ts";
import { commandLine, isAlive } from "../src/drivers/process.ts";
import type { JournalEntry } from "./support/firecracker/fake-server.ts";
import { hostCgroups } from "./support/host-cgroups.ts";
import { readJsonLines } from "./support/json-lines.ts";
import { idsOf } from "./support/proc-ids.ts";

/*
 * The firecracker driver through the jailer: the stand-in jailer (support/firecracker/fake-jailer.ts,
 * held to the real one's contract by fake-jailer.test.ts) builds the chroot and drops to the VM's
 * uid, and execs the fake Firecracker, which opens what the driver names inside that chroot as the
 * uid. Changing user needs root.
 */

const FAKE_JAILER = fileURLToPath(new URL("./support/firecracker/fake-jailer.ts", import.meta.url));
const FAKE_CLI = fileURLToPath(new URL("./support/firecracker/fake-cli.ts", import.meta.url));
const UID = 400_100;
const skip = process.getuid?.() !== 0 ? "the jailer changes user: root only" : undefined;

const spec: BootSpec = {
  vmId: "srv-0000fd01",
  vcpuCount: 2,
  memoryMb: 256,
  ipAddress: "10.6.0.9",
  prefixLength: 24,
  gateway: "10.6.0.1",
};

let dir: string;
/** The "Firecracker binary" the jailer copies and execs: the fake, with the journal of its calls. */
let execFile: string;
let kernel: string;
let rootfs: string;
let apiJournal: string;
let jailerJournal: string;
let users: GuestUsers;
const drivers: FirecrackerDriver[] = [];
const booted: Instance[] = [];

function driver(cgroups?: GuestCgroups): FirecrackerDriver {
  const created = new FirecrackerDriver({
    runDir: join(dir, "run"),
    kernel,
    initrd: kernel,
    rootfs,
    jailer: { command: [process.execPath, FAKE_JAILER], execFile, chrootBase: join(dir, "jail") },
    guestUsers: users,
    ...(cgroups && { cgroups }),
    // As in firecracker-driver.test.ts: the fake compiles the spec before it listens.
    apiTimeoutMs: 30_000,
  });
  drivers.push(created);
  return created;
}

const jailDir = (vmId: string): string => join(dir, "jail", "firecracker", vmId);
const chroot = (vmId: string): string => join(jailDir(vmId), "root");

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "mikrom-fcj-"));
  // The stand-in cannot chroot: the guest's uid reaches the chroot through the folders above it,
  // as the real jailer's Firecracker, inside it, need not.
  await chmod(dir, 0o755);
  apiJournal = join(dir, "api.jsonl");
  jailerJournal = join(dir, "jailer.jsonl");
  // The fake Firecracker writes its journal as the guest's uid.
  await writeFile(apiJournal, "", { mode: 0o666 });
  await chmod(apiJournal, 0o666);
  vi.stubEnv("FAKE_JAILER_JOURNAL", jailerJournal);
  await mkdir(join(dir, "bin"));
  execFile = join(dir, "bin", "firecracker");
  await writeFile(
    execFile,
    `#!/bin/sh\nexec ${process.execPath} ${FAKE_CLI} --journal ${apiJournal} "$@"\n`,
    { mode: 0o755 },
  );
  // Readable by all: linked into the chroot. Readable by root alone: copied, and made the guest's.
  kernel = join(dir, "vmlinux");
  await writeFile(kernel, "kernel", { mode: 0o644 });
  rootfs = join(dir, "rootfs.ext4");
  await writeFile(rootfs, "disk", { mode: 0o600 });
  users = new GuestUsers({ first: UID, count: 1 }, join(dir, "run"));
});
afterEach(async () => {
  for (const vm of booted.splice(0)) await drivers[0]?.destroy(vm).catch(() => {});
  for (const d of drivers.splice(0)) await d.close();
  vi.unstubAllEnvs();
  await rm(dir, { recursive: true, force: true });
});

describe("the jailer's command line", () => {
  it("names the VM, Firecracker, the VM's uid as uid and gid, the chroot base and the namespace; Firecracker's socket follows --", () => {
    const jailer = {
      command: ["/usr/bin/jailer"],
      execFile: "/usr/bin/firecracker",
      chrootBase: "/srv/jailer",
    };
    expect(jailerArgv(jailer, { vmId: "srv-1", uid: 400_007, netns: "mt-1" })).toEqual([
      "/usr/bin/jailer",
      "--id",
      "srv-1",
      "--exec-file",
      "/usr/bin/firecracker",
      "--uid",
      "400007",
      "--gid",
      "400007",
      "--chroot-base-dir",
      "/srv/jailer",
      "--netns",
      "/var/run/netns/mt-1",
      "--",
      "--api-sock",
      "/run/firecracker.socket",
    ]);
  });

  it("refuses a jailed driver that has no uid to give each guest", () => {
    expect(
      () =>
        new FirecrackerDriver({
          runDir: "/nonexistent",
          kernel: "/nonexistent",
          jailer: { command: ["jailer"], execFile: "/usr/bin/firecracker", chrootBase: "/srv/jailer" },
        }),
    ).toThrow(/guestUsers/);
  });
});

describe.skipIf(skip)(`the firecracker driver through the jailer${skip ? ` (${skip})` : ""}`, () => {
  it("runs the guest as its own uid in its chroot, with its files there and every path named inside", async () => {
    const fc = driver();
    const vm = await fc.boot(spec);
    booted.push(vm);
    const root = chroot(spec.vmId);
    expect(vm).toMatchObject({ guestUid: UID, jailDir: jailDir(spec.vmId) });

    expect(await readJsonLines(jailerJournal)).toEqual([
      [
        "--id",
        spec.vmId,
        "--exec-file",
        execFile,
        "--uid",
        String(UID),
        "--gid",
        String(UID),
        "--chroot-base-dir",
        join(dir, "jail"),
        "--",
        "--api-sock",
        "/run/firecracker.socket",
      ],
    ]);
    // The process the driver spawned is now Firecracker, started by the jailer, as the VM's user.
    expect(await idsOf(vm.pid!)).toEqual({ uid: UID, gid: UID });
    const argv = (await commandLine(vm.pid!))!;
    expect(argv.slice(argv.indexOf("--id"), argv.indexOf("--id") + 2)).toEqual(["--id", spec.vmId]);
    expect(argv.slice(-2)).toEqual(["--api-sock", "/run/firecracker.socket"]);

    // The kernel, readable by all, linked; the root-only disk copied and made the guest's.
    expect((await stat(join(root, "kernel"))).ino).toBe((await stat(kernel)).ino);
    const disk = await stat(join(root, "rootfs"));
    expect([disk.uid, disk.mode & 0o777, disk.ino === (await stat(rootfs)).ino]).toEqual([UID, 0o400, false]);
    // The socket is Firecracker's, in the chroot; the record's is a link to it.
    const socket = await lstat(join(root, "run", "firecracker.socket"));
    expect([socket.isSocket(), socket.uid]).toEqual([true, UID]);
    expect(await readlink(vm.apiSocket!)).toBe(join(root, "run", "firecracker.socket"));
    expect(await firecrackerCall(vm.apiSocket!, "GET", "/")).toMatchObject({
      id: spec.vmId,
      state: "Running",
    });

    // Every file named by its path inside the chroot, and opened there by the guest's uid.
    const calls = await readJsonLines<JournalEntry>(apiJournal);
    expect(calls.every((c) => c.status >= 200 && c.status < 300)).toBe(true);
    expect(calls.find((c) => c.path === "/boot-source")?.body).toMatchObject({
      kernel_image_path: "/kernel",
      initrd_path: "/initrd",
    });
    expect(calls.find((c) => c.path === "/drives/rootfs")?.body).toMatchObject({ path_on_host: "/rootfs" });
    expect(await fc.console(vm)).toContain(`MIKROM-READY vm=${spec.vmId} ip=10.6.0.9/24`);
  });

  it("removes the chroot once stopped, and frees the uid for the next VM once destroyed", async () => {
    const fc = driver();
    const vm = await fc.boot(spec);
    booted.push(vm);
    const next: BootSpec = { ...spec, vmId: "srv-0000fd02", ipAddress: "10.6.0.10" };
    // One uid in the range, and it is held.
    await expect(fc.boot(next)).rejects.toMatchObject({ step: "prepare", message: /no guest uid free/ });

    await fc.stop(vm);
    expect(await isAlive(vm.pid!)).toBe(false);
    expect(await fc.status(vm)).toBe("stopped");
    await expect(access(jailDir(spec.vmId))).rejects.toThrow();

    await fc.destroy(vm);
    await expect(access(vm.runDir)).rejects.toThrow();
    const second = await fc.boot(next);
    booted.push(second);
    expect(second.guestUid).toBe(UID);
    expect((await idsOf(second.pid!)).uid).toBe(UID);
  });

  it("lets a restarted agent find and adopt the jailed VM, tell it from a reused pid, and destroy it", async () => {
    const vm = await driver().boot(spec);
    booted.push(vm);
    const restarted = driver();
    expect(await restarted.find(spec.vmId)).toEqual({ status: "running", instance: vm });
    expect((await restarted.adopt({ ...vm, pid: process.pid })).status).toBe("gone");
    const adopted = await restarted.adopt(JSON.parse(JSON.stringify(vm)));
    expect(adopted.status).toBe("running");
    await restarted.destroy(adopted.instance);
    expect(await isAlive(vm.pid!)).toBe(false);
    await expect(access(jailDir(spec.vmId))).rejects.toThrow();
    await expect(access(vm.runDir)).rejects.toThrow();
  });

  it("fails a VM id the jailer refuses at the prepare step, before anything is made", async () => {
    const error = await driver()
      .boot({ ...spec, vmId: "srv_0000fd01" })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BootFailed);
    expect(error).toMatchObject({
      step: "prepare",
      message: expect.stringMatching(/jailer refuses the id srv_0000fd01/),
    });
    expect(await readJsonLines(jailerJournal)).toEqual([]);
    await expect(access(join(dir, "run", "srv_0000fd01"))).rejects.toThrow();
    await expect(access(jailDir("srv_0000fd01"))).rejects.toThrow();
    // Its uid was given back.
    expect(await users.take("srv-0000fdff")).toBe(UID);
  });

  it("fails the boot with the jailer's own refusal when it refuses to start, and leaves nothing", async () => {
    execFile = join(dir, "bin", "no-firecracker");
    const error = await driver()
      .boot(spec)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BootFailed);
    expect(error).toMatchObject({
      step: "spawn",
      message: expect.stringMatching(/the jailer or firecracker exited/),
    });
    expect((error as BootFailed).consoleTail).toContain(
      `Failed to canonicalize path ${execFile}: No such file or directory (os error 2)`,
    );
    await expect(access(join(dir, "jail", "no-firecracker", spec.vmId))).rejects.toThrow();
    await expect(access(join(dir, "run", spec.vmId))).rejects.toThrow();
  });
});

const host = skip ? { skip } : await hostCgroups();
afterAll(async () => {
  // The test's own parent goes too (the agent keeps its parent for the next guest).
  if (!("skip" in host)) for (const parent of host.cgroups.dirs("")) await rmdir(parent).catch(() => {});
});

describe("a jailed guest's cgroup", () => {
  it.skipIf("skip" in host)(
    `is the agent's, made as for any guest (no --cgroup for the jailer) (${"skip" in host ? host.skip : "this host's tree"})`,
    async () => {
      if ("skip" in host) return;
      const vm = await driver(host.cgroups).boot(spec);
      booted.push(vm);
      expect(await readFile(`/proc/${vm.pid}/cgroup`, "utf8")).toContain(`/${host.parent}/${spec.vmId}`);
      expect((await readJsonLines(jailerJournal)).flat()).not.toContain("--cgroup");
      await drivers[0]!.destroy(vm);
      for (const cgroup of host.cgroups.dirs(spec.vmId)) await expect(access(cgroup)).rejects.toThrow();
    },
  );
});
