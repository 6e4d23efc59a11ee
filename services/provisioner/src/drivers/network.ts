import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { access, constants } from "node:fs/promises";
import { promisify } from "node:util";

const run = promisify(execFile);

/**
 * Host networking for VMs, where the agent has the privilege (root and /dev/net/tun): a tap per
 * VM, an isolated port of a bridge (what each guest may send from is guest-fence.ts's). Everything
 * goes through iproute2's `ip`; `netns` runs the command inside a network namespace (the tests build
 * their own).
 */

export class NetworkError extends Error {
  override readonly name = "NetworkError";
}

function inNetns(netns: string | undefined, argv: string[]): string[] {
  return netns ? ["netns", "exec", netns, "ip", ...argv] : argv;
}

async function ip(argv: string[], netns?: string): Promise<string> {
  const full = inNetns(netns, argv);
  try {
    const { stdout } = await run("ip", full, { timeout: 10_000 });
    return stdout;
  } catch (error) {
    const stderr = String((error as { stderr?: unknown }).stderr ?? "").trim();
    throw new NetworkError(`ip ${full.join(" ")}: ${stderr || (error as Error).message}`);
  }
}

/** True when this process may create taps and bridges. */
export async function canManageNetwork(): Promise<boolean> {
  if (process.getuid?.() !== 0) return false;
  try {
    await access("/dev/net/tun", constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** A tap name for a VM: `mk-` and 8 hex digits (interface names stop at 15 characters). */
export function tapNameFor(vmId: string): string {
  const hex =
    /^srv-([0-9a-f]{8})$/.exec(vmId)?.[1] ?? createHash("sha256").update(vmId).digest("hex").slice(0, 8);
  return `mk-${hex}`;
}

/** A stable locally administered MAC for a VM (52:54:00 is QEMU's prefix). */
export function macFor(vmId: string): string {
  const h = createHash("sha256").update(vmId).digest();
  return ["52", "54", "00", h[0], h[1], h[2]]
    .map((part) => (typeof part === "number" ? part.toString(16).padStart(2, "0") : part))
    .join(":");
}

export async function linkExists(name: string, netns?: string): Promise<boolean> {
  try {
    await ip(["link", "show", "dev", name], netns);
    return true;
  } catch {
    return false;
  }
}

/** Creates the bridge (and gives it an address, e.g. the VMs' gateway) unless it exists. */
export async function ensureBridge(options: {
  name: string;
  address?: string;
  netns?: string;
}): Promise<void> {
  const { name, address, netns } = options;
  if (!(await linkExists(name, netns))) await ip(["link", "add", "name", name, "type", "bridge"], netns);
  if (address) {
    const held = await ip(["-o", "addr", "show", "dev", name], netns);
    if (!held.includes(` ${address} `)) await ip(["addr", "add", address, "dev", name], netns);
  }
  await ip(["link", "set", "dev", name, "up"], netns);
}

/**
 * Puts a guest's link on the bridge as an isolated port (kernel 4.18 and later) and brings it up:
 * isolated ports forward to the bridge itself and to ports that are not isolated (the uplink), never
 * to one another, so guests reach their gateway but not each other.
 */
export async function attachGuestPort(options: {
  name: string;
  bridge: string;
  netns?: string;
}): Promise<void> {
  const { name, bridge, netns } = options;
  await ip(["link", "set", "dev", name, "master", bridge], netns);
  await ip(["link", "set", "dev", name, "type", "bridge_slave", "isolated", "on"], netns);
  await ip(["link", "set", "dev", name, "up"], netns);
}

/** A tap for one VM, an isolated port of the bridge, up. Fails if a link of that name exists (it may be another VM's). */
export async function createTap(options: { name: string; bridge: string; netns?: string }): Promise<void> {
  const { name, netns } = options;
  await ip(["tuntap", "add", "dev", name, "mode", "tap"], netns);
  try {
    await attachGuestPort(options);
  } catch (error) {
    await removeTap({ name, ...(netns ? { netns } : {}) });
    throw error;
  }
}

/** Removes the tap; a tap that is already gone is fine. */
export async function removeTap(options: { name: string; netns?: string }): Promise<void> {
  if (!(await linkExists(options.name, options.netns))) return;
  await ip(["link", "del", "dev", options.name], options.netns);
}

export async function addNetns(name: string): Promise<void> {
  await ip(["netns", "add", name]);
  await ip(["link", "set", "dev", "lo", "up"], name);
}

export async function deleteNetns(name: string): Promise<void> {
  const list = await ip(["netns", "list"]);
  if (list.split("\n").some((line) => line.split(" ")[0] === name)) await ip(["netns", "del", name]);
}

/** The argv that runs `argv` inside the namespace (or unchanged without one). */
export function netnsCommand(netns: string | undefined, argv: readonly string[]): string[] {
  return netns ? ["ip", "netns", "exec", netns, ...argv] : [...argv];
}
