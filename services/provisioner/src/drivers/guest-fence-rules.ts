/*
 * The nftables text of the guests' fence (guest-fence.ts runs it): one table, `bridge mikrom`, whose
 * rules are written once and never name a VM; each VM is only elements of its sets, keyed by its
 * tap's name. A frame that enters the bridge from a fenced tap must come from the guest's MAC and be
 * ARP or IPv4 from the guest's address (IPv6, VLAN tags, STP and every other ethertype are dropped:
 * the pool hands out IPv4 only), and may not be addressed to another guest's IPv4 address (which
 * the host would otherwise route back onto the bridge). Ports not in `guest_ports` (the uplink)
 * pass untouched. Pure: no I/O here.
 */

export const FENCE_FAMILY = "bridge";
export const FENCE_TABLE = "mikrom";
const TABLE = `${FENCE_FAMILY} ${FENCE_TABLE}`;

/** What one guest's tap may send from. */
export interface FencedPort {
  readonly tap: string;
  readonly mac: string;
  readonly ip: string;
}

/** The sets' elements as the kernel holds them (parseFenceElements). */
export interface FenceElements {
  readonly ports: readonly string[];
  /** [tap, mac] */
  readonly macs: readonly (readonly [string, string])[];
  /** [tap, ip] */
  readonly ips: readonly (readonly [string, string])[];
  readonly addrs: readonly string[];
}

export const NO_ELEMENTS: FenceElements = { ports: [], macs: [], ips: [], addrs: [] };

const TAP = /^[A-Za-z0-9_.-]{1,15}$/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const IPV4 = /^((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/** The text goes to nft as it is: refuse anything that is not plainly a name, a MAC or an address. */
function checked(port: FencedPort): FencedPort {
  const mac = port.mac.toLowerCase();
  if (!TAP.test(port.tap)) throw new Error(`not a tap name: ${JSON.stringify(port.tap)}`);
  if (!MAC.test(mac)) throw new Error(`not a MAC address: ${JSON.stringify(port.mac)}`);
  if (!IPV4.test(port.ip)) throw new Error(`not an IPv4 address: ${JSON.stringify(port.ip)}`);
  return { tap: port.tap, mac, ip: port.ip };
}

/**
 * The table, its sets and its chains. Idempotent: `add` leaves what exists, the chains are flushed
 * and written again in the same transaction (so an agent's restart never doubles a rule, and the
 * fence is never open in between), and the sets keep their elements (the running guests').
 */
export function fenceTableScript(): string {
  const chains = {
    guests: [
      // Not a guest's tap: the uplink, or a port someone else added.
      "iifname != @guest_ports accept",
      "iifname . ether saddr != @guest_macs drop",
      "ether type vmap { arp : jump guest_arp, ip : jump guest_ipv4 }",
      "drop",
    ],
    guest_arp: [
      // The sender fields are read at Ethernet/IPv4 offsets: anything else is no ARP a guest needs.
      "arp htype != 1 drop",
      "arp ptype != ip drop",
      "arp hlen != 6 drop",
      "arp plen != 4 drop",
      "iifname . arp saddr ether != @guest_macs drop",
      "iifname . arp saddr ip != @guest_ips drop",
      "accept",
    ],
    guest_ipv4: ["iifname . ip saddr != @guest_ips drop", "ip daddr @guest_addrs drop", "accept"],
  };
  return [
    `add table ${TABLE}`,
    `add set ${TABLE} guest_ports { type ifname; }`,
    `add set ${TABLE} guest_macs { type ifname . ether_addr; }`,
    `add set ${TABLE} guest_ips { type ifname . ipv4_addr; }`,
    `add set ${TABLE} guest_addrs { type ipv4_addr; }`,
    `add chain ${TABLE} guest_arp`,
    `add chain ${TABLE} guest_ipv4`,
    `add chain ${TABLE} guests { type filter hook prerouting priority filter; policy accept; }`,
    ...Object.keys(chains).map((chain) => `flush chain ${TABLE} ${chain}`),
    ...Object.entries(chains).flatMap(([chain, rules]) =>
      rules.map((rule) => `add rule ${TABLE} ${chain} ${rule}`),
    ),
    "",
  ].join("\n");
}

/** Adding first makes the delete succeed whether or not the element is there. */
function remove(set: string, element: string): string[] {
  return [`add element ${TABLE} ${set} { ${element} }`, `delete element ${TABLE} ${set} { ${element} }`];
}

/**
 * The transaction that leaves `tap` with exactly the elements of `port` (or with none when `port`
 * is undefined), given what the sets hold now: stale ones (another MAC or address the tap had) go,
 * the wanted ones are added (adding one that is there already changes nothing).
 */
export function fencePortScript(tap: string, port: FencedPort | undefined, current: FenceElements): string {
  const want = port && checked(port);
  if (want && want.tap !== tap) throw new Error(`the port's tap is ${want.tap}, not ${tap}`);
  if (!TAP.test(tap)) throw new Error(`not a tap name: ${JSON.stringify(tap)}`);
  const quoted = JSON.stringify(tap);
  const staleMacs = current.macs.filter(([t, mac]) => t === tap && mac !== want?.mac);
  const staleIps = current.ips.filter(([t, ip]) => t === tap && ip !== want?.ip);
  // An address goes from guest_addrs only when no other port (nor this one, still) holds it.
  const keptIps = new Set(current.ips.filter(([t]) => t !== tap).map(([, ip]) => ip));
  if (want) keptIps.add(want.ip);
  const staleAddrs = [...new Set(staleIps.map(([, ip]) => ip))].filter((ip) => !keptIps.has(ip));
  const lines = [
    ...staleMacs.flatMap(([, mac]) => remove("guest_macs", `${quoted} . ${mac}`)),
    ...staleIps.flatMap(([, ip]) => remove("guest_ips", `${quoted} . ${ip}`)),
    ...staleAddrs.flatMap((ip) => remove("guest_addrs", ip)),
    ...(want
      ? [
          `add element ${TABLE} guest_macs { ${quoted} . ${want.mac} }`,
          `add element ${TABLE} guest_ips { ${quoted} . ${want.ip} }`,
          `add element ${TABLE} guest_addrs { ${want.ip} }`,
          `add element ${TABLE} guest_ports { ${quoted} }`,
        ]
      : remove("guest_ports", quoted)),
  ];
  return [...lines, ""].join("\n");
}

type JsonElement = string | { concat?: unknown[]; elem?: { val?: unknown } };

/** One element of `nft -j` output: a plain value, a concatenation, or either wrapped with its options. */
function elementValues(element: JsonElement): string[] {
  if (typeof element === "string") return [element];
  if (Array.isArray(element.concat)) return element.concat.map(String);
  if (element.elem?.val !== undefined) return elementValues(element.elem.val as JsonElement);
  return [];
}

/** The fence's elements from `nft -j list table bridge mikrom`. */
export function parseFenceElements(json: string): FenceElements {
  const parsed = JSON.parse(json) as { nftables?: { set?: { name?: string; elem?: JsonElement[] } }[] };
  const sets = new Map<string, string[][]>();
  for (const entry of parsed.nftables ?? []) {
    if (entry.set?.name) sets.set(entry.set.name, (entry.set.elem ?? []).map(elementValues));
  }
  const pairs = (name: string): [string, string][] =>
    (sets.get(name) ?? []).flatMap((values) =>
      values.length === 2 ? [[values[0]!, values[1]!.toLowerCase()] as [string, string]] : [],
    );
  const singles = (name: string): string[] => (sets.get(name) ?? []).flatMap((values) => values.slice(0, 1));
  return {
    ports: singles("guest_ports"),
    macs: pairs("guest_macs"),
    ips: pairs("guest_ips"),
    addrs: singles("guest_addrs"),
  };
}
