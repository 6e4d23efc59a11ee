import { describe, expect, it } from "vitest";
import { type PoolLayout, validatePool } from "../src/domain/validation.ts";

const good: PoolLayout = {
  name: "lab",
  cidr: "10.8.0.0/24",
  gateway: "10.8.0.1",
  rangeStart: "10.8.0.10",
  rangeEnd: "10.8.0.200",
};
const others = [{ poolId: "pool-00000001", name: "default", cidr: "172.16.0.0/24" }];

const issuesOf = (def: Partial<PoolLayout>): string[] => {
  const result = validatePool({ ...good, ...def }, others);
  return result.ok ? [] : result.issues.map((i) => `${i.field}: ${i.message}`);
};

describe("pool validation", () => {
  it("a well-formed pool that collides with nothing is accepted", () => {
    const result = validatePool(good, others);
    expect(result.ok).toBe(true);
    if (result.ok) expect(result.end - result.start + 1).toBe(191);
  });

  it.each<[string, Partial<PoolLayout>, string]>([
    ["a malformed CIDR", { cidr: "10.8.0/24" }, 'cidr: "10.8.0/24" is not a valid CIDR'],
    [
      "a CIDR with host bits",
      { cidr: "10.8.0.7/24" },
      'cidr: "10.8.0.7/24" has host bits set; the network is 10.8.0.0/24',
    ],
    ["a network wider than /16", { cidr: "10.0.0.0/15" }, "pools must be between /16 and /30"],
    [
      "a gateway outside the network",
      { gateway: "10.9.0.1" },
      "gateway: gateway 10.9.0.1 is outside the network 10.8.0.0/24",
    ],
    [
      "the network address as gateway",
      { gateway: "10.8.0.0" },
      "gateway: gateway 10.8.0.0 is the network address of 10.8.0.0/24",
    ],
    ["the broadcast address as gateway", { gateway: "10.8.0.255" }, "is the broadcast address"],
    [
      "a gateway inside the range",
      { gateway: "10.8.0.50" },
      "gateway: gateway 10.8.0.50 is inside the range 10.8.0.10–10.8.0.200",
    ],
    [
      "a range start outside the CIDR",
      { rangeStart: "10.7.255.200" },
      "rangeStart: 10.7.255.200 is outside the usable hosts of 10.8.0.0/24 (10.8.0.1–10.8.0.254)",
    ],
    [
      "a range end outside the CIDR",
      { rangeEnd: "10.8.1.5" },
      "rangeEnd: 10.8.1.5 is outside the usable hosts",
    ],
    [
      "a range ending on the broadcast address",
      { rangeEnd: "10.8.0.255" },
      "rangeEnd: 10.8.0.255 is outside the usable hosts",
    ],
    [
      "a reversed range",
      { rangeStart: "10.8.0.200", rangeEnd: "10.8.0.10" },
      "rangeEnd: range is reversed: 10.8.0.10 is before 10.8.0.200",
    ],
    [
      "an overlapping network",
      { cidr: "172.16.0.0/16", gateway: "172.16.9.1", rangeStart: "172.16.9.2", rangeEnd: "172.16.9.9" },
      'cidr: 172.16.0.0/16 overlaps pool "default" (172.16.0.0/24)',
    ],
    ["a name in use", { name: "default" }, 'name: a pool named "default" exists (pool-00000001)'],
    ["a malformed gateway", { gateway: "10.8.0.300" }, 'gateway: "10.8.0.300" is not an IPv4 address'],
    ["a malformed range start", { rangeStart: "10.8.0" }, 'rangeStart: "10.8.0" is not an IPv4 address'],
    ["a malformed range end", { rangeEnd: "x" }, 'rangeEnd: "x" is not an IPv4 address'],
    [
      "a gateway on the range's first address",
      { gateway: "10.8.0.10" },
      "gateway: gateway 10.8.0.10 is inside the range 10.8.0.10–10.8.0.200",
    ],
    [
      "a gateway on the range's last address",
      { gateway: "10.8.0.200" },
      "gateway: gateway 10.8.0.200 is inside the range 10.8.0.10–10.8.0.200",
    ],
    [
      "a range starting on the network address",
      { rangeStart: "10.8.0.0" },
      "rangeStart: 10.8.0.0 is outside the usable hosts of 10.8.0.0/24 (10.8.0.1–10.8.0.254)",
    ],
  ])("%s is refused with its reason", (_, def, reason) => {
    expect(issuesOf(def).join("\n")).toContain(reason);
  });

  it("a gateway just outside the range is not in it", () => {
    expect(issuesOf({ gateway: "10.8.0.9" })).toEqual([]);
    expect(issuesOf({ gateway: "10.8.0.201" })).toEqual([]);
  });

  it("a definition with a malformed address is refused, and only for what is malformed", () => {
    expect(validatePool({ ...good, rangeEnd: "x" }, [])).toEqual({
      ok: false,
      issues: [{ field: "rangeEnd", message: '"x" is not an IPv4 address (four decimal octets 0-255)' }],
    });
    expect(validatePool({ ...good, cidr: "10.8.0.0" }, [])).toEqual({
      ok: false,
      issues: [{ field: "cidr", message: '"10.8.0.0" is not in CIDR notation (a.b.c.d/prefix)' }],
    });
    // A malformed address is compared with nothing: no "outside", "reversed" or "inside the range" besides.
    for (const field of ["gateway", "rangeStart"] as const) {
      expect(validatePool({ ...good, [field]: "x" }, [])).toEqual({
        ok: false,
        issues: [{ field, message: '"x" is not an IPv4 address (four decimal octets 0-255)' }],
      });
    }
    expect(validatePool({ ...good, gateway: "x", rangeStart: "x", rangeEnd: "x" }, [])).toEqual({
      ok: false,
      issues: ["gateway", "rangeStart", "rangeEnd"].map((field) => ({
        field,
        message: '"x" is not an IPv4 address (four decimal octets 0-255)',
      })),
    });
  });

  it("an accepted pool comes back normalized, with its network and range as numbers", () => {
    expect(validatePool(good, others)).toEqual({
      ok: true,
      normalized: good,
      cidr: { network: 0x0a080000, prefixLength: 24, broadcast: 0x0a0800ff },
      start: 0x0a08000a,
      end: 0x0a0800c8,
    });
  });

  it("names every problem at once", () => {
    expect(
      issuesOf({ gateway: "10.9.0.1", rangeStart: "10.8.0.200", rangeEnd: "10.8.0.10", name: "default" }),
    ).toHaveLength(3);
  });

  it("a /30 with the gateway and one address in range is the smallest pool", () => {
    const result = validatePool(
      {
        name: "tiny",
        cidr: "10.8.0.4/30",
        gateway: "10.8.0.5",
        rangeStart: "10.8.0.6",
        rangeEnd: "10.8.0.6",
      },
      others,
    );
    expect(result.ok).toBe(true);
  });
});
