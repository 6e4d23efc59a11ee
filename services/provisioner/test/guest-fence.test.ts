import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { setLogDestination } from "@mikrom/telemetry";
import { captureLogs } from "@mikrom/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { driverConfigFromEnv } from "../src/drivers/config.ts";
import { ConsoleKeeper } from "../src/drivers/console-log.ts";
import { GuestFence, guestFenceFor } from "../src/drivers/guest-fence.ts";
import { parseFenceElements } from "../src/drivers/guest-fence-rules.ts";
import {
  addNetns,
  attachGuestPort,
  canManageNetwork,
  deleteNetns,
  ensureBridge,
  linkExists,
  macFor,
  tapNameFor,
} from "../src/drivers/network.ts";
import { vmPaths } from "../src/drivers/run-dir.ts";
import { prepareVm, teardownVm, writeRecord } from "../src/drivers/supervision.ts";
import { pingOnce } from "./support/ping.ts";

/*
 * The fence with real kernel objects and real traffic: a private namespace holds the bridge (the
 * host, its address the guests' gateway), and each guest is a namespace of its own at the far end
 * of a veth pair whose near end is the guest's port on the bridge, with the VM's MAC and address. A
 * tap passes no traffic without a hypervisor behind it; a veth end on the bridge is the same port
 * to the bridge and to nftables. The controls first show that the same traffic passes without the
 * fence, so that what the fenced tests see dropped is dropped by the fence.
 */

const run = promisify(execFile);

/** Whether the command is there (it may still refuse these arguments). */
const exists = (argv: string[]) =>
  run(argv[0]!, argv.slice(1)).then(
    () => true,
    (error: { code?: unknown }) => error.code !== "ENOENT",
  );

const skip = await (async () => {
  if (!(await canManageNetwork()))
    return "needs root and /dev/net/tun to build namespaces, bridges and rules";
  const missing: string[] = [];
  if (!(await exists(["nft", "--version"]))) missing.push("nft (nftables)");
  if (!(await exists(["ping", "-V"])) && !(await exists(["busybox", "ping", "-h"])))
    missing.push("ping (iputils-ping or busybox)");
  if (missing.length === 0) return undefined;
  const why = `${missing.join(" and ")} missing (services/provisioner/guest/install-deps.sh installs them)`;
  // CI installs them first (.ci/run): there, a missing piece is a failure, not a skip.
  if (process.env.CI) throw new Error(`the fence tests cannot run in CI: ${why}`);
  return why;
})();

const GATEWAY = "10.66.0.1";
let namespaces = 0;

interface Guest {
  readonly netns: string;
  readonly tap: string;
  readonly mac: string;
  readonly ip: string;
}

interface Lan {
  /** The host's namespace: the bridge `br0`, its address the gateway. */
  readonly host: string;
  readonly a: Guest;
  readonly b: Guest;
  readonly fence?: GuestFence;
  close(): Promise<void>;
}

const inNetns = (netns: string, argv: string[]) => run("ip", ["netns", "exec", netns, ...argv]);

/** A bridge with two guests on it: isolated ports or plain ones, fenced or not. */
async function buildLan(options: { isolated: boolean; fenced: boolean }): Promise<Lan> {
  const prefix = `mf${process.pid}-${namespaces++}`;
  const host = `${prefix}-h`;
  const made: string[] = [];
  const guest = async (n: number): Promise<Guest> => {
    const vmId = `srv-0000f00${n}`;
    const netns = `${prefix}-${n}`;
    await addNetns(netns);
    made.push(netns);
    const g = { netns, tap: tapNameFor(vmId), mac: macFor(vmId), ip: `10.66.0.${n + 1}` };
    await run("ip", [
      "-n",
      host,
      "link",
      "add",
      g.tap,
      "type",
      "veth",
      "peer",
      "name",
      "eth0",
      "netns",
      netns,
    ]);
    if (options.isolated) await attachGuestPort({ name: g.tap, bridge: "br0", netns: host });
    else {
      await run("ip", ["-n", host, "link", "set", "dev", g.tap, "master", "br0"]);
      await run("ip", ["-n", host, "link", "set", "dev", g.tap, "up"]);
    }
    await run("ip", ["-n", netns, "link", "set", "dev", "eth0", "address", g.mac]);
    await run("ip", ["-n", netns, "addr", "add", `${g.ip}/24`, "dev", "eth0"]);
    await run("ip", ["-n", netns, "link", "set", "dev", "eth0", "up"]);
    await run("ip", ["-n", netns, "route", "add", "default", "via", GATEWAY]);
    return g;
  };
  const close = async () => {
    for (const netns of made.reverse()) await deleteNetns(netns);
  };
  try {
    await addNetns(host);
    made.push(host);
    await ensureBridge({ name: "br0", address: `${GATEWAY}/24`, netns: host });
    const a = await guest(1);
    const b = await guest(2);
    if (!options.fenced) return { host, a, b, close };
    const fence = new GuestFence(host);
    await fence.prepare();
    for (const g of [a, b]) await fence.fence(g);
    return { host, a, b, fence, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** Lets the host route between the guests, and each guest send to the other through it. */
async function routeThroughHost(lan: Lan): Promise<void> {
  await inNetns(lan.host, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
  for (const [from, to] of [
    [lan.a, lan.b],
    [lan.b, lan.a],
  ] as const) {
    await run("ip", ["-n", from.netns, "route", "replace", `${to.ip}/32`, "via", GATEWAY]);
  }
}

/** The MAC the host's neighbour table holds for `ip` on the bridge, if any. */
async function gatewayNeighbour(lan: Lan, ip: string): Promise<string | undefined> {
  const { stdout } = await run("ip", ["-n", lan.host, "-j", "neigh", "show", "dev", "br0", "to", ip]);
  const [entry] = JSON.parse(stdout || "[]") as { lladdr?: string }[];
  return entry?.lladdr;
}

/** Guest `g` sends from `ip` as well as its own, as a guest that takes a neighbour's address would. */
async function takeAddress(g: Guest, ip: string): Promise<void> {
  await run("ip", ["-n", g.netns, "addr", "add", `${ip}/32`, "dev", "eth0"]);
}

async function setMac(g: Guest, mac: string): Promise<void> {
  await run("ip", ["-n", g.netns, "link", "set", "dev", "eth0", "address", mac]);
}

async function listTable(lan: Lan, ...what: string[]): Promise<string> {
  const { stdout } = await inNetns(lan.host, ["nft", ...what]);
  return stdout;
}

/** Guest `g` knows the gateway's MAC without asking (a neighbour entry set by hand): it sends IPv4 only. */
async function knowGateway(lan: Lan, g: Guest): Promise<void> {
  const { stdout } = await run("ip", ["-n", lan.host, "-j", "link", "show", "dev", "br0"]);
  const [bridge] = JSON.parse(stdout) as { address: string }[];
  await run("ip", [
    "-n",
    g.netns,
    "neigh",
    "replace",
    GATEWAY,
    "lladdr",
    bridge!.address,
    "dev",
    "eth0",
    "nud",
    "permanent",
  ]);
}

/**
 * Counts the frames matching `match` that the host takes in from the bridge (the bridge family's
 * input hook, after the fence's prerouting): what the fence dropped never gets there.
 */
async function probe(lan: Lan, name: string, match: string[]): Promise<() => Promise<number>> {
  const nft = (...argv: string[]) => inNetns(lan.host, ["nft", ...argv]);
  await nft("add", "table", "bridge", "probe");
  await nft(
    "add",
    "chain",
    "bridge",
    "probe",
    "input",
    "{ type filter hook input priority 0; policy accept; }",
  );
  await nft("add", "counter", "bridge", "probe", name);
  await nft("add", "rule", "bridge", "probe", "input", ...match, "counter", "name", name);
  return async () => {
    const { stdout } = await nft("-j", "list", "counter", "bridge", "probe", name);
    const listed = JSON.parse(stdout) as { nftables: { counter?: { packets: number } }[] };
    return listed.nftables.find((entry) => entry.counter)?.counter?.packets ?? Number.NaN;
  };
}

/** Where python3 is there, frames no ordinary tool sends (a raw socket in the guest's namespace). */
const python = await run("python3", ["--version"]).then(
  () => true,
  () => false,
);

const SEND_ARP = `
import socket, sys
mac = lambda text: bytes.fromhex(text.replace(":", ""))
frame_mac, sender_mac, sender_ip, target_ip = sys.argv[1:]
arp = b"\\x00\\x01\\x08\\x00\\x06\\x04\\x00\\x01" + mac(sender_mac) + socket.inet_aton(sender_ip) + bytes(6) + socket.inet_aton(target_ip)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
s.send(b"\\xff" * 6 + mac(frame_mac) + b"\\x08\\x06" + arp)
`;

/** One ARP request from guest `g`'s own MAC and address, whose ARP sender MAC is `sender`. */
async function sendArp(g: Guest, arp: { sender: string; target: string }): Promise<void> {
  await inNetns(g.netns, ["python3", "-c", SEND_ARP, g.mac, arp.sender, g.ip, arp.target]);
}

const SPOOFED_MAC = "52:54:00:66:66:66";

describe.skipIf(skip)(`the guests' fence on a real bridge (${skip ?? "namespaces of its own"})`, () => {
  it("control: on plain ports without the fence, a guest reaches another and sends as it or as any MAC", async () => {
    const lan = await buildLan({ isolated: false, fenced: false });
    try {
      expect(await pingOnce(lan.a.netns, lan.b.ip)).toBe(true);
      expect(await pingOnce(lan.b.netns, GATEWAY)).toBe(true);
      await takeAddress(lan.a, lan.b.ip);
      expect(await pingOnce(lan.a.netns, GATEWAY, lan.b.ip)).toBe(true);
      // The gateway now sends B's traffic to A.
      expect(await gatewayNeighbour(lan, lan.b.ip)).toBe(lan.a.mac);
      await setMac(lan.a, SPOOFED_MAC);
      await run("ip", ["-n", lan.host, "neigh", "flush", "dev", "br0"]);
      expect(await pingOnce(lan.a.netns, GATEWAY)).toBe(true);
      expect(await gatewayNeighbour(lan, lan.a.ip)).toBe(SPOOFED_MAC);
    } finally {
      await lan.close();
    }
  });

  it("control: isolated ports alone keep guests apart on the bridge, but not through the host's routing", async () => {
    const lan = await buildLan({ isolated: true, fenced: false });
    try {
      expect(await pingOnce(lan.a.netns, GATEWAY)).toBe(true);
      expect(await pingOnce(lan.a.netns, lan.b.ip)).toBe(false);
      await routeThroughHost(lan);
      expect(await pingOnce(lan.a.netns, lan.b.ip)).toBe(true);
    } finally {
      await lan.close();
    }
  });

  describe("isolated and fenced, as the driver makes them", () => {
    let lan: Lan;
    beforeAll(async () => {
      lan = await buildLan({ isolated: true, fenced: true });
    });
    afterAll(async () => {
      await lan?.close();
    });

    it("lets each guest reach its gateway, and the gateway each guest", async () => {
      expect(await pingOnce(lan.a.netns, GATEWAY)).toBe(true);
      expect(await pingOnce(lan.b.netns, GATEWAY)).toBe(true);
      expect(await pingOnce(lan.host, lan.a.ip)).toBe(true);
    });

    it("keeps a guest from another, on the bridge and through the host's routing", async () => {
      expect(await pingOnce(lan.a.netns, lan.b.ip)).toBe(false);
      await routeThroughHost(lan);
      expect(await pingOnce(lan.a.netns, lan.b.ip)).toBe(false);
      expect(await pingOnce(lan.b.netns, lan.a.ip)).toBe(false);
      expect(await pingOnce(lan.a.netns, GATEWAY)).toBe(true);
    });

    it("drops ARP from a guest that claims another's address: the gateway never learns it", async () => {
      expect(await pingOnce(lan.b.netns, GATEWAY)).toBe(true);
      await takeAddress(lan.a, lan.b.ip);
      try {
        // A asks for the gateway anew, from B's address: that request is what would teach the gateway.
        await run("ip", ["-n", lan.a.netns, "neigh", "flush", "dev", "eth0"]);
        expect(await pingOnce(lan.a.netns, GATEWAY, lan.b.ip)).toBe(false);
        expect(await gatewayNeighbour(lan, lan.b.ip)).toBe(lan.b.mac);
      } finally {
        await run("ip", ["-n", lan.a.netns, "addr", "del", `${lan.b.ip}/32`, "dev", "eth0"]);
      }
      expect(await pingOnce(lan.a.netns, GATEWAY)).toBe(true);
    });

    it("drops IPv4 from a guest that sends from another's address, where no ARP is needed", async () => {
      const own = await probe(lan, "a_own", ["ether", "saddr", lan.a.mac, "ip", "saddr", lan.a.ip]);
      const spoofed = await probe(lan, "a_as_b", ["ether", "saddr", lan.a.mac, "ip", "saddr", lan.b.ip]);
      await takeAddress(lan.a, lan.b.ip);
      try {
        await knowGateway(lan, lan.a);
        expect(await pingOnce(lan.a.netns, GATEWAY)).toBe(true);
        expect(await pingOnce(lan.a.netns, GATEWAY, lan.b.ip)).toBe(false);
        // The host saw A's own packets, and none of those it sent as B.
        expect(await own()).toBeGreaterThan(0);
        expect(await spoofed()).toBe(0);
      } finally {
        await run("ip", ["-n", lan.a.netns, "addr", "del", `${lan.b.ip}/32`, "dev", "eth0"]);
        await run("ip", ["-n", lan.a.netns, "neigh", "flush", "dev", "eth0"]);
      }
    });

    it("drops a guest that sends from another MAC, in ARP and in IPv4", async () => {
      const spoofed = await probe(lan, "spoofed_mac", ["ether", "saddr", SPOOFED_MAC]);
      await setMac(lan.a, SPOOFED_MAC);
      try {
        // ARP: the gateway has to ask anew, and A answers from the new MAC.
        await run("ip", ["-n", lan.host, "neigh", "flush", "dev", "br0"]);
        expect(await pingOnce(lan.a.netns, GATEWAY)).toBe(false);
        expect(await gatewayNeighbour(lan, lan.a.ip)).not.toBe(SPOOFED_MAC);
        // IPv4 alone: A sends to the gateway without asking.
        await knowGateway(lan, lan.a);
        expect(await pingOnce(lan.a.netns, GATEWAY)).toBe(false);
        expect(await spoofed()).toBe(0);
      } finally {
        // A new MAC flushes the guest's neighbours, the one set by hand included.
        await setMac(lan.a, lan.a.mac);
      }
      expect(await pingOnce(lan.a.netns, GATEWAY)).toBe(true);
    });

    it.skipIf(!python)(
      `drops ARP whose sender MAC is not the frame's, a guest's own frame otherwise (${python ? "frames made with python3" : "no python3 to make the frames"})`,
      async () => {
        const reached = await probe(lan, "crafted", ["arp", "daddr", "ip", "10.66.0.254"]);
        const spoofed = await probe(lan, "arp_sender", ["arp", "saddr", "ether", SPOOFED_MAC]);
        await sendArp(lan.a, { sender: lan.a.mac, target: "10.66.0.254" });
        await sendArp(lan.a, { sender: SPOOFED_MAC, target: GATEWAY });
        expect(await reached()).toBe(1);
        expect(await spoofed()).toBe(0);
        expect(await gatewayNeighbour(lan, lan.a.ip)).not.toBe(SPOOFED_MAC);
      },
    );

    it("made again (an agent's restart) and a guest fenced again, doubles nothing; a new address replaces the old", async () => {
      const before = await listTable(lan, "list", "table", "bridge", "mikrom");
      await lan.fence!.prepare();
      await lan.fence!.fence(lan.b);
      expect(await listTable(lan, "list", "table", "bridge", "mikrom")).toBe(before);

      await lan.fence!.fence({ ...lan.b, ip: "10.66.0.99" });
      const moved = parseFenceElements(await listTable(lan, "-j", "list", "table", "bridge", "mikrom"));
      expect(moved.ips.filter(([tap]) => tap === lan.b.tap)).toEqual([[lan.b.tap, "10.66.0.99"]]);
      expect(moved.addrs).not.toContain(lan.b.ip);
      expect(await pingOnce(lan.b.netns, GATEWAY)).toBe(false);
      await lan.fence!.fence(lan.b);
      expect(await pingOnce(lan.b.netns, GATEWAY)).toBe(true);
    });

    it("comes back whole after a reload of the host's firewall flushed the ruleset", async () => {
      const elements = async () =>
        parseFenceElements(await listTable(lan, "-j", "list", "table", "bridge", "mikrom"));
      const rules = await listTable(lan, "list", "chain", "bridge", "mikrom", "guests");
      const before = await elements();
      await inNetns(lan.host, ["nft", "flush", "ruleset"]);
      // The next boot's fence makes the table again; the agent's restart brings back every recorded guest.
      await lan.fence!.fence(lan.b);
      expect((await elements()).ports).toEqual([lan.b.tap]);
      await lan.fence!.restore([lan.a, lan.b]);
      const sorted = (e: Awaited<ReturnType<typeof elements>>) =>
        JSON.stringify(e, (_, v) => (Array.isArray(v) ? [...v].sort() : v));
      expect(sorted(await elements())).toBe(sorted(before));
      expect(await listTable(lan, "list", "chain", "bridge", "mikrom", "guests")).toBe(rules);
      expect(await pingOnce(lan.a.netns, lan.b.ip)).toBe(false);
      expect(await pingOnce(lan.a.netns, GATEWAY)).toBe(true);
    });

    it("released for one guest, takes that guest's elements only, and leaves the rules, the other guest and other tables alone", async () => {
      // Someone else's table naming the same tap.
      const other = `table bridge other {\n\tset ports {\n\t\ttype ifname\n\t\telements = { "${lan.a.tap}" }\n\t}\n}\n`;
      await run("ip", ["netns", "exec", lan.host, "sh", "-c", `printf '%s' '${other}' | nft -f -`]);
      const chains = ["guests", "guest_arp", "guest_ipv4"];
      const rules = () =>
        Promise.all(chains.map((chain) => listTable(lan, "list", "chain", "bridge", "mikrom", chain)));
      const before = await rules();
      await lan.fence!.release(lan.a.tap);
      await lan.fence!.release(lan.a.tap);
      expect(parseFenceElements(await listTable(lan, "-j", "list", "table", "bridge", "mikrom"))).toEqual({
        ports: [lan.b.tap],
        macs: [[lan.b.tap, lan.b.mac]],
        ips: [[lan.b.tap, lan.b.ip]],
        addrs: [lan.b.ip],
      });
      expect(await rules()).toEqual(before);
      expect(await listTable(lan, "list", "table", "bridge", "other")).toBe(other);
      expect(await pingOnce(lan.b.netns, GATEWAY)).toBe(true);
    });
  });

  it("is made by the driver's boot preparation on an isolated tap, made again from the records as the agent starts, and goes with the tap at teardown", async () => {
    const host = `mf${process.pid}-${namespaces++}-d`;
    const runDir = await mkdtemp(join(tmpdir(), "mkf-"));
    await addNetns(host);
    try {
      await ensureBridge({ name: "br0", address: `${GATEWAY}/24`, netns: host });
      const { fence } = await guestFenceFor("on", "br0", { runDir, netns: host });
      const spec = { vmId: "srv-0000f009", tap: tapNameFor("srv-0000f009"), ipAddress: "10.66.0.9" };
      const paths = vmPaths(runDir, spec.vmId, "qmp.sock");
      expect(await prepareVm(spec, paths, { bridge: "br0", netns: host, fence })).toEqual({ tapOwned: true });
      const { stdout } = await run("ip", ["-n", host, "-d", "-j", "link", "show", "dev", spec.tap]);
      const [link] = JSON.parse(stdout) as {
        master?: string;
        linkinfo?: { info_slave_data?: { isolated?: boolean } };
      }[];
      expect(link?.master).toBe("br0");
      expect(link?.linkinfo?.info_slave_data?.isolated).toBe(true);
      const table = async () =>
        parseFenceElements((await inNetns(host, ["nft", "-j", "list", "table", "bridge", "mikrom"])).stdout);
      expect(await table()).toEqual({
        ports: [spec.tap],
        macs: [[spec.tap, macFor(spec.vmId)]],
        ips: [[spec.tap, spec.ipAddress]],
        addrs: [spec.ipAddress],
      });

      const instance = {
        vmId: spec.vmId,
        driver: "qemu" as const,
        consoleLog: paths.console,
        runDir: paths.dir,
        ipAddress: spec.ipAddress,
        prefixLength: 24,
        tap: spec.tap,
        tapOwned: true,
        netns: host,
        startedAt: new Date().toISOString(),
      };
      // An agent that starts after a reload flushed the ruleset: the table and the recorded guest come back.
      await writeRecord(paths.dir, instance);
      await inNetns(host, ["nft", "flush", "ruleset"]);
      expect((await guestFenceFor("on", "br0", { runDir, netns: host })).fence).toBeDefined();
      expect((await table()).macs).toEqual([[spec.tap, macFor(spec.vmId)]]);

      const keeper = new ConsoleKeeper(1024);
      await teardownVm(instance, undefined, keeper, async () => {}, fence);
      keeper.close();
      expect(await linkExists(spec.tap, host)).toBe(false);
      expect(await table()).toEqual({ ports: [], macs: [], ips: [], addrs: [] });
    } finally {
      await deleteNetns(host);
      await rm(runDir, { recursive: true, force: true });
    }
  });
});

describe("the fence as configured (MIKROM_GUEST_FENCE)", () => {
  it("is none without a bridge or when off; auto says once, as a warning, why it cannot be made; on refuses to run", async () => {
    expect(driverConfigFromEnv({}).guestFence).toBe("auto");
    expect(() => driverConfigFromEnv({ MIKROM_GUEST_FENCE: "yes" })).toThrow(/MIKROM_GUEST_FENCE/);
    const where = { runDir: tmpdir() };
    expect(await guestFenceFor("on", undefined, where)).toEqual({
      reason: "guests without a tap (no MIKROM_BRIDGE)",
    });
    expect(await guestFenceFor("off", "br0", where)).toEqual({
      reason: "guests unfenced on their bridge (MIKROM_GUEST_FENCE=off)",
    });
    // A namespace that does not exist: nft cannot run there (nor can anything without root).
    const nowhere = `mf${process.pid}-nowhere`;
    const logs = captureLogs();
    setLogDestination(logs);
    try {
      const auto = await guestFenceFor("auto", "br0", { ...where, netns: nowhere });
      expect(auto.fence).toBeUndefined();
      expect(auto.reason).toMatch(/^guests unfenced on br0: ./);
      const said = logs.lines.filter((line) => line.logger === "mikrom.provisioner.fence");
      expect(said).toHaveLength(1);
      expect(said[0]).toMatchObject({ level: "WARN", bridge: "br0" });
      expect(said[0]!.message).toMatch(/^guests on br0 may send from any MAC and IP address/);
      await expect(guestFenceFor("on", "br0", { ...where, netns: nowhere })).rejects.toThrow(
        /^MIKROM_GUEST_FENCE=on but ./,
      );
    } finally {
      setLogDestination(undefined);
    }
  });
});
