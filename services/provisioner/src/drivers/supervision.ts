import { readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { ConsoleKeeper } from "./console-log.ts";
import { type AdoptResult, type BootSpec, Instance, type InstanceStatus } from "./driver.ts";
import { BootFailed, InvalidInstance } from "./errors.ts";
import type { GuestFence } from "./guest-fence.ts";
import { createTap, macFor, removeTap } from "./network.ts";
import { isAlive, isOurProcess } from "./process.ts";
import { ensureDir, type VmPaths, vmPaths } from "./run-dir.ts";

/*
 * What the process drivers (QEMU, Firecracker) do alike around the hypervisor process they
 * supervise: the instance record in the VM's folder, the folder and tap before a boot, the
 * `stopped` marker, and the end of the process. The hypervisor-specific parts (how to ask it to
 * end, how to ask it its state) come in as functions.
 */

const RECORD = "instance.json";

/** Ends a hypervisor process that is ours; `graceful` first asks the guest to shut down. */
export type EndProcess = (pid: number, socket: string, graceful: boolean) => Promise<void>;

/**
 * Replaces the record whole: written beside it, then renamed over it. A reader (the agent looking
 * for a VM, or reconciling after a SIGKILL mid-write) sees the old record or the new, never a
 * truncated one that would make a running VM unknown.
 */
export async function writeRecord(dir: string, instance: Instance): Promise<void> {
  const next = `${dir}/${RECORD}.next`;
  await writeFile(next, JSON.stringify(instance));
  await rename(next, `${dir}/${RECORD}`);
}

export async function readRecord(dir: string): Promise<Instance | undefined> {
  try {
    const parsed = Instance.safeParse(JSON.parse(await readFile(`${dir}/${RECORD}`, "utf8")));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** The records of every VM folder in the run folder (what an agent that restarts finds again). */
export async function readRecords(runDir: string): Promise<Instance[]> {
  const entries = await readdir(runDir, { withFileTypes: true }).catch(() => []);
  const records = await Promise.all(
    entries.filter((entry) => entry.isDirectory()).map((entry) => readRecord(join(runDir, entry.name))),
  );
  return records.filter((record) => record !== undefined);
}

/**
 * Readies the VM's folder for a boot: refuses when the last run's hypervisor still holds the VM,
 * removes the last run's console, output, socket (Firecracker refuses to start when its socket
 * path exists) and stopped marker, and creates the tap when a bridge is configured, fenced to the
 * VM's MAC and address when the driver has a fence. Resolves whether the driver owns (and so
 * removes) the tap.
 */
export async function prepareVm(
  spec: Pick<BootSpec, "vmId" | "tap" | "ipAddress">,
  paths: VmPaths,
  network: { bridge?: string | undefined; netns?: string | undefined; fence?: GuestFence | undefined },
): Promise<{ tapOwned: boolean }> {
  const previous = await readRecord(paths.dir);
  if (previous && (await runsVm(previous, paths.socket))) {
    throw new BootFailed("prepare", `VM ${spec.vmId} already runs (pid ${previous.pid})`);
  }
  await ensureDir(paths.dir);
  await Promise.all(
    [paths.console, paths.output, paths.socket, paths.stoppedMarker].map((p) => rm(p, { force: true })),
  );
  const { bridge, netns, fence } = network;
  const tapOwned = Boolean(spec.tap && bridge);
  if (spec.tap && bridge) {
    const tap = { name: spec.tap, ...(netns ? { netns } : {}) };
    const fail = async (error: unknown, made: boolean): Promise<never> => {
      // Only a tap this boot made goes: one that was there already may be another VM's.
      if (made) {
        await removeTap(tap).catch(() => {});
        await fence?.release(spec.tap!).catch(() => {});
      }
      await rm(paths.dir, { recursive: true, force: true });
      throw new BootFailed("network", (error as Error).message);
    };
    await createTap({ ...tap, bridge }).catch((error) => fail(error, false));
    // After the tap: its creation proved the name is this VM's, so no other VM's fence is replaced.
    await fence
      ?.fence({ tap: spec.tap, mac: macFor(spec.vmId), ip: spec.ipAddress })
      .catch((error) => fail(error, true));
  }
  return { tapOwned };
}

/**
 * Whether the record's pid is still the VM's hypervisor (a pid may have been reused since): its
 * command line names the VM's control socket; under the jailer Firecracker's names a path inside
 * its chroot that every VM's shares, so the `--id <vm id>` that the jailer takes, and passes on
 * to Firecracker, marks it instead.
 */
async function runsVm(vm: Instance, socket: string | undefined): Promise<boolean> {
  const marker = vm.jailDir ? ["--id", vm.vmId] : socket;
  return vm.pid !== undefined && marker !== undefined && isOurProcess(vm.pid, marker);
}

/** Only a process that is still the VM's is ended. */
async function endIfOurs(
  vm: Instance,
  socket: string | undefined,
  keeper: ConsoleKeeper,
  end: (pid: number, socket: string) => Promise<void>,
): Promise<void> {
  keeper.unwatch(vm.consoleLog);
  if (vm.pid && socket && (await runsVm(vm, socket))) await end(vm.pid, socket);
}

/**
 * The jailer's folder for the VM, once its process has ended: nothing in it is needed any more
 * (the links to the boot files, a dead socket), and the jailer refuses a folder that a run left
 * (its pid file exists).
 */
async function removeJail(vm: Instance): Promise<void> {
  if (vm.jailDir) await rm(vm.jailDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 20 });
}

/** Stops following the console, ends the process if it is still ours, removes its jail, marks the VM stopped. */
export async function stopVm(
  vm: Instance,
  socket: string | undefined,
  keeper: ConsoleKeeper,
  end: EndProcess,
): Promise<void> {
  await endIfOurs(vm, socket, keeper, (pid, ours) => end(pid, ours, true));
  await removeJail(vm);
  await writeFile(`${vm.runDir}/stopped`, new Date().toISOString()).catch(() => {});
}

/**
 * Ends the process at once if it is still ours, removes the jail, the tap the driver made (and then
 * its fence: a tap never lives unfenced) and the VM's folder.
 */
export async function teardownVm(
  vm: Instance,
  socket: string | undefined,
  keeper: ConsoleKeeper,
  end: EndProcess,
  fence?: GuestFence,
): Promise<void> {
  await endIfOurs(vm, socket, keeper, (pid, ours) => end(pid, ours, false));
  await removeJail(vm);
  if (vm.tap && vm.tapOwned) {
    await removeTap({ name: vm.tap, ...(vm.netns ? { netns: vm.netns } : {}) });
    await fence?.release(vm.tap);
  }
  // Retried: a hypervisor (or its jailer) that just ended may still add a file while the folder is
  // removed (ENOTEMPTY), and a failed destroy is redelivered and done twice.
  await rm(vm.runDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 20 });
}

/**
 * The hypervisor's own answer while its process is ours (`query`); otherwise `stopped` when the
 * VM was stopped on purpose and `gone` when it ended by itself.
 */
export async function supervisedStatus(
  vm: Instance,
  socket: string | undefined,
  query: (socket: string) => Promise<InstanceStatus>,
): Promise<InstanceStatus> {
  if (socket && (await runsVm(vm, socket))) return query(socket);
  const stopped = await readFile(`${vm.runDir}/stopped`).then(
    () => true,
    () => false,
  );
  return stopped ? "stopped" : "gone";
}

/** Takes over a VM from an instance record: its status, and its console followed again while it lives. */
export async function adoptVm(
  record: unknown,
  own: (instance: Instance) => Instance,
  status: (vm: Instance) => Promise<InstanceStatus>,
  keeper: ConsoleKeeper,
): Promise<AdoptResult> {
  const parsed = Instance.safeParse(record);
  if (!parsed.success) throw new InvalidInstance(`not an instance record: ${parsed.error.message}`);
  const vm = own(parsed.data);
  const current = await status(vm);
  if (vm.pid && (await isAlive(vm.pid)) && current !== "gone") keeper.watch(vm.consoleLog);
  return { status: current, instance: vm };
}

/**
 * The VM the run folder records (instance.json, written at spawn and again at readiness), its
 * status, and its console followed again while it lives; undefined when the folder holds no record
 * of this driver's. This is what tells the agent that a VM runs which its store does not know of.
 */
export async function findVm(
  runDir: string,
  vmId: string,
  socketName: string,
  own: (instance: Instance) => Instance,
  status: (vm: Instance) => Promise<InstanceStatus>,
  keeper: ConsoleKeeper,
): Promise<AdoptResult | undefined> {
  let paths: VmPaths;
  try {
    paths = vmPaths(runDir, vmId, socketName);
  } catch {
    return undefined;
  }
  const record = await readRecord(paths.dir);
  if (!record || record.vmId !== vmId) return undefined;
  try {
    own(record);
  } catch {
    // Another driver's record (the host changed drivers): not a VM this driver can act on.
    return undefined;
  }
  return adoptVm(record, own, status, keeper);
}
