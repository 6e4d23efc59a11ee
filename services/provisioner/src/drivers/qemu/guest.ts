import { execFile } from "node:child_process";
import { readFile, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { z } from "zod";

const run = promisify(execFile);

/** guest/build.sh in this package: it builds the guest from Debian packages into a cache folder. */
export const GUEST_BUILD_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), "../../../guest/build.sh");

const Manifest = z.object({
  stamp: z.string(),
  kernelPackage: z.string(),
  kernelRelease: z.string(),
  kernel: z.string(),
  bzImage: z.string().optional(),
  initramfs: z.string(),
});

/** The built guest: absolute paths of its kernel (ELF vmlinux) and initramfs. */
export interface Guest {
  dir: string;
  kernel: string;
  initramfs: string;
  kernelPackage: string;
  /** Changes whenever the kernel or the init script changes (keys the KVM probe cache). */
  stamp: string;
}

export function defaultGuestDir(env: Readonly<Record<string, string | undefined>>): string {
  if (env.MIKROM_GUEST_DIR) return env.MIKROM_GUEST_DIR;
  const cache = env.XDG_CACHE_HOME || join(env.HOME || homedir(), ".cache");
  return join(cache, "mikrom", "guest");
}

/** The guest in `dir`, or undefined when it has not been built there. */
export async function findGuest(dir: string): Promise<Guest | undefined> {
  let manifest: z.infer<typeof Manifest>;
  try {
    manifest = Manifest.parse(JSON.parse(await readFile(join(dir, "manifest.json"), "utf8")));
  } catch {
    return undefined;
  }
  const guest = {
    dir,
    kernel: join(dir, manifest.kernel),
    initramfs: join(dir, manifest.initramfs),
    kernelPackage: manifest.kernelPackage,
    stamp: manifest.stamp,
  };
  try {
    await Promise.all([stat(guest.kernel), stat(guest.initramfs)]);
  } catch {
    return undefined;
  }
  return guest;
}

/** Runs guest/build.sh (idempotent: quick when the guest is up to date) and returns the guest. */
export async function buildGuest(dir: string): Promise<Guest> {
  await run("bash", [GUEST_BUILD_SCRIPT], {
    env: { ...process.env, MIKROM_GUEST_DIR: dir, MIKROM_GUEST_QUIET: "1" },
    timeout: 10 * 60_000,
    maxBuffer: 4 << 20,
  });
  const guest = await findGuest(dir);
  if (!guest) throw new Error(`guest/build.sh ran but left no guest in ${dir}`);
  return guest;
}
