import { chmod, chown, copyFile, link, mkdir, rm, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import { BootFailed } from "../errors.ts";

/*
 * Firecracker through its jailer (firecracker-microvm/firecracker docs/jailer.md, v1.16). The
 * jailer, run as root, makes <chroot base>/<exec file's name>/<id>/root, copies Firecracker into
 * it, gives that root and its /dev, /dev/net and /run to the guest's uid and gid, changes its root
 * to it, drops to the uid and gid and execs Firecracker in the same process, its stdin, stdout and
 * stderr kept. Firecracker then names every file by its path inside the chroot: its API socket,
 * and the kernel, initrd and disk, which must be there before they are configured.
 *
 * Not used: --daemonize (it forks twice, so the pid the agent spawned ends, and sends the console
 * to /dev/null), --new-pid-ns (another pid again), and --cgroup (the agent's own cgroup module
 * confines the process, as it does QEMU's: without --cgroup and with cgroup version 1, the
 * default, the jailer touches no cgroup).
 */

export interface JailerOptions {
  /** The command that starts the jailer, e.g. ["/usr/bin/jailer"]; tests run a stand-in. */
  readonly command: readonly string[];
  /** Firecracker's binary by its real path: the jailer resolves links and names the jail's folder after the file. */
  readonly execFile: string;
  /** Where the jailer makes its chroots (its --chroot-base-dir). */
  readonly chrootBase: string;
}

/** Firecracker's API socket as the jailed process names it (its default); the host sees it in the chroot. */
export const JAILED_API_SOCKET = "/run/firecracker.socket";

/** The boot files, by the paths the jailed Firecracker opens them at. */
export const JAILED_FILES = { kernel: "/kernel", initrd: "/initrd", rootfs: "/rootfs" } as const;

/** The ids the jailer takes: letters, digits and '-', at most 64 (a BootSpec's may also hold '_'). */
const JAIL_ID = /^[A-Za-z0-9-]{1,64}$/;

/** The VM's folder under the chroot base; its chroot is `root/` inside. */
export function jailDirOf(jailer: JailerOptions, vmId: string): string {
  return join(jailer.chrootBase, basename(jailer.execFile), vmId);
}

export function chrootOf(jailDir: string): string {
  return join(jailDir, "root");
}

/** The jailer's command line: the gid is the uid (guest-users.ts); Firecracker's own arguments follow `--`. */
export function jailerArgv(
  jailer: JailerOptions,
  vm: { vmId: string; uid: number; netns?: string | undefined },
): string[] {
  return [
    ...jailer.command,
    "--id",
    vm.vmId,
    "--exec-file",
    jailer.execFile,
    "--uid",
    String(vm.uid),
    "--gid",
    String(vm.uid),
    "--chroot-base-dir",
    jailer.chrootBase,
    ...(vm.netns ? ["--netns", `/var/run/netns/${vm.netns}`] : []),
    "--",
    "--api-sock",
    JAILED_API_SOCKET,
  ];
}

/** Refused here, before anything is made, rather than by the jailer after. */
export function checkJailId(vmId: string): void {
  if (!JAIL_ID.test(vmId)) {
    throw new BootFailed(
      "prepare",
      `the jailer refuses the id ${vmId}: letters, digits and '-' only, at most 64 (no '_')`,
    );
  }
}

/**
 * Makes the VM's chroot anew (a folder an earlier run left is removed: the jailer would refuse it)
 * and puts the boot files in it, readable by the guest's uid.
 */
export async function furnishJail(
  jailDir: string,
  files: { kernel: string; initrd?: string | undefined; rootfs?: string | undefined },
  uid: number,
): Promise<void> {
  await rm(jailDir, { recursive: true, force: true });
  const root = chrootOf(jailDir);
  await mkdir(root, { recursive: true, mode: 0o755 });
  const placed = [
    [files.kernel, JAILED_FILES.kernel],
    [files.initrd, JAILED_FILES.initrd],
    [files.rootfs, JAILED_FILES.rootfs],
  ] as const;
  for (const [source, inJail] of placed) {
    if (source) await place(source, join(root, inJail), uid);
  }
}

/**
 * A file others may read is hard-linked (no copy of a large disk; its owner and mode stay, so the
 * guest can change nothing in it); any other, or one on another file system, is copied and made
 * the guest's alone. A link is never chowned: that would change the shared file for every VM.
 */
async function place(source: string, target: string, uid: number): Promise<void> {
  try {
    const { mode } = await stat(source);
    if (mode & 0o004) {
      const linked = await link(source, target).then(
        () => true,
        () => false,
      );
      if (linked) return;
    }
    await copyFile(source, target);
    await chown(target, uid, uid);
    await chmod(target, 0o400);
  } catch (error) {
    throw new BootFailed("prepare", `cannot put ${source} in the jail: ${(error as Error).message}`);
  }
}
