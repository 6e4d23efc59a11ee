import { randomUUID } from "node:crypto";
import { type CgroupLayout, detectCgroups, GuestCgroups } from "../../src/drivers/cgroup.ts";

/**
 * The host's own cgroup tree, where this process may create cgroups in it (root, writable), with a
 * parent of the test's own (removing it is the test's); else why not.
 */
export async function hostCgroups(): Promise<
  { skip: string } | { layout: CgroupLayout; parent: string; cgroups: GuestCgroups }
> {
  const layout = await detectCgroups();
  if (!layout) return { skip: "no cgroup tree with cpu and memory at /sys/fs/cgroup" };
  const parent = `mikrom-test-${randomUUID().slice(0, 8)}`;
  const cgroups = new GuestCgroups(layout, parent);
  const refused = await cgroups.prepare().then(
    () => undefined,
    (error: Error) => error.message,
  );
  return refused ? { skip: `the cgroup tree refuses: ${refused}` } : { layout, parent, cgroups };
}
