import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  cidrOf,
  contains,
  formatCidr,
  formatIpv4,
  isUsableHost,
  maskOf,
  overlaps,
  parseCidr,
  parseIpv4,
  rangeSize,
} from "../src/domain/ipv4.ts";
import { suggestRange } from "../src/domain/suggest-range.ts";

const ok = <T>(p: { ok: true; value: T } | { ok: false; reason: string }): T => {
  if (!p.ok) throw new Error(p.reason);
  return p.value;
};

describe("IPv4 addresses", () => {
  it("parse and format round-trip every 32-bit address", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (n) => {
        expect(ok(parseIpv4(formatIpv4(n)))).toBe(n);
      }),
    );
  });

  it("the highest octet does not turn the number negative", () => {
    expect(ok(parseIpv4("255.255.255.255"))).toBe(0xffffffff);
    expect(ok(parseIpv4("192.168.1.10"))).toBe(0xc0a8010a);
  });

  it.each([
    "",
    "1.2.3",
    "1.2.3.4.5",
    "256.1.1.1",
    "1.2.3.-1",
    "01.2.3.4",
    "a.b.c.d",
    " 1.2.3.4",
    "1.2.3.4/24",
  ])("%j is refused with a reason", (text) => {
    const parsed = parseIpv4(text);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.reason).toMatch(/not an IPv4 address/);
  });
});

describe("CIDR blocks", () => {
  it("a /24 spans its network to its broadcast address", () => {
    const c = ok(parseCidr("172.16.0.0/24"));
    expect(formatIpv4(c.network)).toBe("172.16.0.0");
    expect(formatIpv4(c.broadcast)).toBe("172.16.0.255");
    expect(formatCidr(c)).toBe("172.16.0.0/24");
  });

  it.each([
    ["10.0.0.0", "is not in CIDR notation"],
    ["/24", '"/24" is not a valid CIDR: "" is not an IPv4 address'],
    ["10.0.0/24", "not an IPv4 address"],
    ["10.0.0.0/33", "prefix length must be 0-32"],
    ["10.0.0.0/x", "prefix length must be 0-32"],
    ["10.0.0.0/8", "pools must be between /16 and /30"],
    ["10.0.0.0/31", "pools must be between /16 and /30"],
    ["10.0.0.0/32", '"10.0.0.0/32" has prefix /32; pools must be between /16 and /30'],
    ["10.0.0.0/0", '"10.0.0.0/0" has prefix /0; pools must be between /16 and /30'],
    ["10.0.0.0/15", "has prefix /15"],
    ["10.0.0.0/024", "prefix length must be 0-32"],
    ["10.0.0.5/24", "host bits set; the network is 10.0.0.0/24"],
  ])("%s is refused: %s", (text, reason) => {
    const parsed = parseCidr(text);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.reason).toContain(reason);
  });

  it("accepts every prefix from /16 to /30", () => {
    for (let p = 16; p <= 30; p++) expect(parseCidr(`10.1.0.0/${p}`).ok).toBe(true);
  });

  it("overlap is symmetric and matches containment of the other's network", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 16, max: 30 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 16, max: 30 }),
        (a, pa, b, pb) => {
          const x = cidrOf(a, pa);
          const y = cidrOf(b, pb);
          expect(overlaps(x, y)).toBe(overlaps(y, x));
          expect(overlaps(x, y)).toBe(contains(x, y.network) || contains(y, x.network));
        },
      ),
    );
  });

  it("blocks that share a single address overlap: a /32 at another block's first or last address", () => {
    const block = ok(parseCidr("10.0.0.0/24"));
    const first = cidrOf(block.network, 32);
    const last = cidrOf(block.broadcast, 32);
    expect([
      overlaps(first, block),
      overlaps(block, first),
      overlaps(last, block),
      overlaps(block, last),
    ]).toEqual([true, true, true, true]);
    expect(overlaps(last, last)).toBe(true);
  });

  it("the network and broadcast addresses are not usable hosts", () => {
    const c = ok(parseCidr("192.168.4.0/30"));
    expect([0, 1, 2, 3].map((i) => isUsableHost(c, c.network + i))).toEqual([false, true, true, false]);
  });

  it("a reversed range has no addresses, a range of one address has one", () => {
    expect(rangeSize(10, 12)).toBe(3);
    expect(rangeSize(12, 12)).toBe(1);
    expect(rangeSize(12, 10)).toBe(0);
  });

  it.each<[number, string]>([
    [0, "0.0.0.0"],
    [1, "128.0.0.0"],
    [16, "255.255.0.0"],
    [24, "255.255.255.0"],
    [30, "255.255.255.252"],
    [32, "255.255.255.255"],
  ])("the netmask of /%i is %s", (prefix, mask) => {
    expect(formatIpv4(maskOf(prefix))).toBe(mask);
  });
});

describe("suggest-range", () => {
  it("gives the gateway the first usable address and the range the rest", () => {
    expect(ok(suggestRange("172.16.0.0/24"))).toEqual({
      cidr: "172.16.0.0/24",
      network: "172.16.0.0",
      prefixLength: 24,
      netmask: "255.255.255.0",
      firstUsable: "172.16.0.1",
      lastUsable: "172.16.0.254",
      broadcast: "172.16.0.255",
      totalHosts: 254,
      suggestedGateway: "172.16.0.1",
      suggestedStart: "172.16.0.2",
      suggestedEnd: "172.16.0.254",
      suggestedSize: 253,
    });
  });

  it("a /16 has 65,534 hosts and a /30 two", () => {
    const big = ok(suggestRange("10.20.0.0/16"));
    expect([big.totalHosts, big.suggestedStart, big.suggestedEnd, big.broadcast]).toEqual([
      65534,
      "10.20.0.2",
      "10.20.255.254",
      "10.20.255.255",
    ]);
    const small = ok(suggestRange("10.20.0.4/30"));
    expect([small.totalHosts, small.suggestedGateway, small.suggestedStart, small.suggestedEnd]).toEqual([
      2,
      "10.20.0.5",
      "10.20.0.6",
      "10.20.0.6",
    ]);
  });

  it("refuses a malformed CIDR with its reason", () => {
    expect(suggestRange("10.0.0.1/24")).toEqual({
      ok: false,
      reason: '"10.0.0.1/24" has host bits set; the network is 10.0.0.0/24',
    });
  });
});
