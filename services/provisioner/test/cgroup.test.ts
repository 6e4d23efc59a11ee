import { spawn } from "node:child_process";
import { access, mkdtemp, readFile, rm, rmdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  detectCgroups,
  GuestCgroups,
  guestCgroupsFor,
  HYPERVISOR_ALLOWANCE_MB,
} from "../src/drivers/cgroup.ts";
import { isAlive } from "../src/drivers/process.ts";
import { hostCgroups } from "./support/host-cgroups.ts";

const limits = { vcpuCount: 2, memoryMb: 256 };
const memoryBytes = String((256 + HYPERVISOR_ALLOWANCE_MB) * 1024 * 1024);

const host = await hostCgroups();

describe("a guest's cgroup", () => {
  it.skipIf("skip" in host)(
    `holds the hypervisor with the VM's CPU and memory, and is gone once it has ended (${"skip" in host ? host.skip : "this host's tree"})`,
    async () => {
      if ("skip" in host) return;
      const { cgroups, parent, layout } = host;
      const child = spawn("sleep", ["30"], { stdio: "ignore" });
      const pid = child.pid!;
      try {
        await cgroups.confine("srv-0000c001", pid, limits);
        const membership = await readFile(`/proc/${pid}/cgroup`, "utf8");
        expect(membership).toContain(`/${parent}/srv-0000c001`);
        const [first, second] = cgroups.dirs("srv-0000c001") as [string, string | undefined];
        if (layout.version === 1) {
          expect((await readFile(join(first, "cpu.cfs_quota_us"), "utf8")).trim()).toBe("200000");
          expect((await readFile(join(first, "cpu.cfs_period_us"), "utf8")).trim()).toBe("100000");
          expect((await readFile(join(second!, "memory.limit_in_bytes"), "utf8")).trim()).toBe(memoryBytes);
          for (const dir of [first, second!])
            expect((await readFile(join(dir, "cgroup.procs"), "utf8")).trim().split("\n")).toEqual([
              String(pid),
            ]);
        } else {
          expect((await readFile(join(first, "cpu.max"), "utf8")).trim()).toBe("200000 100000");
          expect((await readFile(join(first, "memory.max"), "utf8")).trim()).toBe(memoryBytes);
        }
      } finally {
        child.kill("SIGKILL");
        await expect.poll(() => isAlive(pid)).toBe(false);
        await cgroups.release("srv-0000c001");
        // The test's own parent goes too (the agent keeps its parent for the next guest).
        for (const dir of cgroups.dirs("")) await rmdir(dir).catch(() => {});
      }
      for (const dir of cgroups.dirs("srv-0000c001")) await expect(access(dir)).rejects.toThrow();
      // Released again (a destroy redelivered): nothing left to do, no error.
      await cgroups.release("srv-0000c001");
    },
  );

  it("in a unified (v2) tree: controllers handed down, memory, no swap and CPU set before the pid moves in", async () => {
    const root = await mkdtemp(join(tmpdir(), "cgroup2-"));
    try {
      await writeFile(join(root, "cgroup.controllers"), "cpuset cpu io memory pids");
      const layout = await detectCgroups(root);
      expect(layout).toEqual({ version: 2, root });
      const cgroups = new GuestCgroups(layout!);
      await cgroups.prepare();
      await cgroups.confine("srv-0000c002", 4242, limits);
      const read = (path: string) => readFile(join(root, path), "utf8");
      expect(await read("cgroup.subtree_control")).toBe("+cpu +memory");
      expect(await read("mikrom/cgroup.subtree_control")).toBe("+cpu +memory");
      expect(await read("mikrom/srv-0000c002/memory.max")).toBe(memoryBytes);
      expect(await read("mikrom/srv-0000c002/memory.swap.max")).toBe("0");
      expect(await read("mikrom/srv-0000c002/cpu.max")).toBe("200000 100000");
      expect(await read("mikrom/srv-0000c002/cgroup.procs")).toBe("4242");
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it("is chosen by MIKROM_GUEST_CGROUPS: off never, auto only where it can be made, on or an error naming why", async () => {
    const none = await mkdtemp(join(tmpdir(), "no-cgroups-"));
    try {
      expect(await guestCgroupsFor("off", none)).toEqual({
        reason: "guests without cgroups (MIKROM_GUEST_CGROUPS=off)",
      });
      expect(await guestCgroupsFor("auto", none)).toEqual({
        reason: `guests without cgroups: no cgroup tree with cpu and memory at ${none}`,
      });
      await expect(guestCgroupsFor("on", none)).rejects.toThrow(
        `MIKROM_GUEST_CGROUPS=on but no cgroup tree with cpu and memory at ${none}`,
      );
      await writeFile(join(none, "cgroup.controllers"), "cpu memory");
      const found = await guestCgroupsFor("on", none);
      expect(found.reason).toBe("a cgroup v2 per guest");
      expect(found.cgroups?.dirs("srv-0000c003")).toEqual([join(none, "mikrom", "srv-0000c003")]);
    } finally {
      await rm(none, { recursive: true, force: true });
    }
  });
});
