import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { createLogger, errorFields } from "@mikrom/telemetry";
import type { Instance } from "./driver.ts";
import {
  FENCE_FAMILY,
  FENCE_TABLE,
  type FencedPort,
  fencePortScript,
  fenceTableScript,
  NO_ELEMENTS,
  parseFenceElements,
} from "./guest-fence-rules.ts";
import { canManageNetwork, macFor, NetworkError, netnsCommand } from "./network.ts";
import { readRecords } from "./supervision.ts";

const run = promisify(execFile);
const log = createLogger("mikrom.provisioner.fence");

/*
 * The guests' fence in the kernel (the rules are guest-fence-rules.ts): the table made as the driver
 * starts, with the elements of the VMs its records name (so an agent that restarts after a firewall
 * reload flushed the ruleset fences its running guests again), and each VM's elements added as its
 * tap is made and removed with it. Every change is one `nft -f -` transaction, so a half-applied
 * fence is never seen.
 */

async function nft(netns: string | undefined, args: string[], script?: string): Promise<string> {
  const [command, ...rest] = netnsCommand(netns, ["nft", ...args]);
  const pending = run(command!, rest, { timeout: 10_000 });
  // A command that ends before reading (nft missing in a namespace) fails through its exit status, not EPIPE.
  pending.child.stdin?.on("error", () => {});
  pending.child.stdin?.end(script ?? "");
  try {
    return (await pending).stdout;
  } catch (error) {
    const { code, stderr } = error as { code?: unknown; stderr?: unknown };
    const said = String(stderr ?? "").trim();
    // `ip netns exec` says so itself when it cannot find the command.
    if (code === "ENOENT" || /exec of "nft" failed: No such file/.test(said))
      throw new NetworkError("nft is not installed (Debian: apt-get install nftables)");
    throw new NetworkError(`nft ${args.join(" ")}: ${said || (error as Error).message}`);
  }
}

export class GuestFence {
  readonly #netns: string | undefined;
  /** One change at a time: each reads the sets and writes what it read against. */
  #queue: Promise<unknown> = Promise.resolve();

  /** `netns`: the namespace the bridge is in (tests); the host's own otherwise. */
  constructor(netns?: string) {
    this.#netns = netns;
  }

  /** Makes (or remakes) the table and its rules, keeping the guests' elements. */
  prepare(): Promise<void> {
    return this.#serial(async () => {
      await nft(this.#netns, ["-f", "-"], fenceTableScript());
    });
  }

  /** The tap may send only from the port's MAC and address; whatever it was allowed before goes. */
  fence(port: FencedPort): Promise<void> {
    return this.#apply([[port.tap, port]]);
  }

  /**
   * Fences every port again, in one transaction: the agent's VMs after its restart, whose elements
   * a reload of the host's firewall may have flushed meanwhile (elements there already stay as they are).
   */
  restore(ports: readonly FencedPort[]): Promise<void> {
    return ports.length === 0 ? Promise.resolve() : this.#apply(ports.map((port) => [port.tap, port]));
  }

  /** The tap's elements go; a tap that has none is fine. */
  release(tap: string): Promise<void> {
    return this.#apply([[tap, undefined]]);
  }

  #apply(changes: readonly (readonly [string, FencedPort | undefined])[]): Promise<void> {
    return this.#serial(async () => {
      const listed = await nft(this.#netns, ["-j", "list", "table", FENCE_FAMILY, FENCE_TABLE]).catch(
        (error: Error) => {
          if (/No such file or directory/.test(error.message)) return undefined;
          throw error;
        },
      );
      // A table that is gone (a firewall reload that flushed the ruleset) is made again with the change.
      const current = listed ? parseFenceElements(listed) : NO_ELEMENTS;
      const ports = changes.map(([tap, port]) => fencePortScript(tap, port, current)).join("");
      await nft(this.#netns, ["-f", "-"], listed ? ports : fenceTableScript() + ports);
    });
  }

  #serial(work: () => Promise<void>): Promise<void> {
    const next = this.#queue.then(work);
    this.#queue = next.catch(() => {});
    return next;
  }
}

/** The taps the records say this driver made, each with its VM's MAC and address. */
function recordedPorts(records: readonly Instance[]): FencedPort[] {
  return records.flatMap((vm) =>
    vm.tap && vm.tapOwned ? [{ tap: vm.tap, mac: macFor(vm.vmId), ip: vm.ipAddress }] : [],
  );
}

/**
 * The fence as configured, for a driver that makes taps on `bridge`: `off`, none; `on`, required
 * (an error names what is missing); `auto`, made where the agent can (root, nft, nf_tables), else
 * none, said once as a warning. Without a bridge the guests get no tap and there is nothing to fence.
 * The taps of the VMs in `runDir`'s records are fenced again as the table is made.
 */
export async function guestFenceFor(
  mode: "auto" | "on" | "off",
  bridge: string | undefined,
  where: { runDir: string; netns?: string },
): Promise<{ fence?: GuestFence; reason: string }> {
  if (!bridge) return { reason: "guests without a tap (no MIKROM_BRIDGE)" };
  if (mode === "off") return { reason: "guests unfenced on their bridge (MIKROM_GUEST_FENCE=off)" };
  const fence = new GuestFence(where.netns);
  const refused = (await canManageNetwork())
    ? await fence.prepare().then(
        () => undefined,
        (error: Error) => error.message,
      )
    : "the agent may not manage the host's network (it needs root and /dev/net/tun)";
  if (!refused) {
    // The fence works for the boots to come even where the running guests' could not be restored.
    await fence
      .restore(recordedPorts(await readRecords(where.runDir)))
      .catch((error: Error) =>
        log.error({ bridge, ...errorFields(error) }, "could not fence the running guests' taps again"),
      );
    return { fence, reason: `guests fenced on ${bridge} (nftables ${FENCE_FAMILY} ${FENCE_TABLE})` };
  }
  if (mode === "on") throw new Error(`MIKROM_GUEST_FENCE=on but ${refused}`);
  log.warn(
    { bridge, reason: refused },
    `guests on ${bridge} may send from any MAC and IP address (their ports are still isolated from each other): ${refused}; MIKROM_GUEST_FENCE=on refuses to run without the fence`,
  );
  return { reason: `guests unfenced on ${bridge}: ${refused}` };
}
