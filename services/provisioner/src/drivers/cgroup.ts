import { access, mkdir, rmdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";

/*
 * A cgroup per guest: its hypervisor, and every thread it starts, may use at most the VM's vCPUs
 * and its memory plus an allowance for the hypervisor itself. A guest that escapes into its
 * hypervisor still cannot starve the host or its neighbours. cgroup v2 (one unified tree) or v1 (a
 * `cpu` and a `memory` hierarchy), whichever the host mounts.
 */

/** What the hypervisor needs beyond the guest's memory: its own code, device models, buffers. */
export const HYPERVISOR_ALLOWANCE_MB = 128;
const PERIOD_US = 100_000;

export type CgroupLayout =
  | { readonly version: 2; readonly root: string }
  | { readonly version: 1; readonly cpu: string; readonly memory: string };

export interface GuestLimits {
  readonly vcpuCount: number;
  readonly memoryMb: number;
}

const exists = (path: string): Promise<boolean> =>
  access(path).then(
    () => true,
    () => false,
  );

/** The cgroup tree mounted under `root`, if one with CPU and memory control is. */
export async function detectCgroups(root = "/sys/fs/cgroup"): Promise<CgroupLayout | undefined> {
  if (await exists(join(root, "cgroup.controllers"))) return { version: 2, root };
  const cpu = join(root, "cpu");
  const memory = join(root, "memory");
  if ((await exists(join(cpu, "cgroup.procs"))) && (await exists(join(memory, "cgroup.procs"))))
    return { version: 1, cpu, memory };
  return undefined;
}

/** A cgroup left by an earlier boot of the same VM (its process has ended) is used again. */
function existed(error: NodeJS.ErrnoException): void {
  if (error.code !== "EEXIST") throw error;
}

export class GuestCgroups {
  readonly #layout: CgroupLayout;
  readonly #parent: string;

  /** Guests' cgroups go under `parent` (a name, one level below each hierarchy's root). */
  constructor(layout: CgroupLayout, parent = "mikrom") {
    this.#layout = layout;
    this.#parent = parent;
  }

  /** The guest's folders, one per hierarchy. */
  dirs(vmId: string): string[] {
    const l = this.#layout;
    return l.version === 2
      ? [join(l.root, this.#parent, vmId)]
      : [join(l.cpu, this.#parent, vmId), join(l.memory, this.#parent, vmId)];
  }

  /**
   * Puts `pid` in the VM's cgroup with its limits. Called right after the spawn: what the process
   * did before it moved is bounded by the spawn itself, and everything it starts after is inside.
   */
  /**
   * Makes the guests' parent, once, as the agent starts. In a v2 tree a controller works in a
   * cgroup only when every ancestor hands it down, which a tree with processes at its root (a
   * container's own) refuses: that refusal is found here, not at a boot.
   */
  async prepare(): Promise<void> {
    const l = this.#layout;
    await Promise.all(this.dirs("").map((dir) => mkdir(dir, { recursive: true })));
    if (l.version === 2) {
      await writeFile(join(l.root, "cgroup.subtree_control"), "+cpu +memory");
      await writeFile(join(l.root, this.#parent, "cgroup.subtree_control"), "+cpu +memory");
    }
  }

  async confine(vmId: string, pid: number, limits: GuestLimits): Promise<void> {
    const memoryBytes = String((limits.memoryMb + HYPERVISOR_ALLOWANCE_MB) * 1024 * 1024);
    const quotaUs = String(limits.vcpuCount * PERIOD_US);
    const l = this.#layout;
    if (l.version === 2) {
      const [dir] = this.dirs(vmId) as [string];
      await mkdir(dir).catch(existed);
      await writeFile(join(dir, "memory.max"), memoryBytes);
      await writeFile(join(dir, "memory.swap.max"), "0").catch(() => {});
      await writeFile(join(dir, "cpu.max"), `${quotaUs} ${PERIOD_US}`);
      await writeFile(join(dir, "cgroup.procs"), String(pid));
      return;
    }
    const [cpu, memory] = this.dirs(vmId) as [string, string];
    await Promise.all([mkdir(cpu), mkdir(memory)].map((made) => made.catch(existed)));
    await writeFile(join(cpu, "cpu.cfs_period_us"), String(PERIOD_US));
    await writeFile(join(cpu, "cpu.cfs_quota_us"), quotaUs);
    await writeFile(join(memory, "memory.limit_in_bytes"), memoryBytes);
    await writeFile(join(cpu, "cgroup.procs"), String(pid));
    await writeFile(join(memory, "cgroup.procs"), String(pid));
  }

  /**
   * Removes the VM's cgroup once its process has ended. Retried: the kernel lets a cgroup go only
   * when its last task has fully exited, a moment after the process is seen gone.
   */
  async release(vmId: string): Promise<void> {
    for (const dir of this.dirs(vmId)) {
      for (let attempt = 0; ; attempt++) {
        try {
          await rmdir(dir);
          break;
        } catch (error) {
          const code = (error as NodeJS.ErrnoException).code;
          if (code === "ENOENT") break;
          if (code !== "EBUSY" || attempt >= 20) throw error;
          await delay(25);
        }
      }
    }
  }
}

/**
 * The guests' cgroups as configured: `off`, none; `on`, required (an error names what is missing);
 * `auto`, used where the agent may create them (root, with a writable tree), else none, with why.
 */
export async function guestCgroupsFor(
  mode: "auto" | "on" | "off",
  root = "/sys/fs/cgroup",
): Promise<{ cgroups?: GuestCgroups; reason: string }> {
  if (mode === "off") return { reason: "guests without cgroups (MIKROM_GUEST_CGROUPS=off)" };
  const layout = await detectCgroups(root);
  const cgroups = layout && new GuestCgroups(layout);
  const refused =
    cgroups &&
    (await cgroups.prepare().then(
      () => undefined,
      (error: Error) => error,
    ));
  if (cgroups && !refused) return { cgroups, reason: `a cgroup v${layout.version} per guest` };
  const why = refused
    ? `the cgroup tree at ${root} refuses guests' cgroups: ${refused.message}`
    : `no cgroup tree with cpu and memory at ${root}`;
  if (mode === "on") throw new Error(`MIKROM_GUEST_CGROUPS=on but ${why}`);
  return { reason: `guests without cgroups: ${why}` };
}
