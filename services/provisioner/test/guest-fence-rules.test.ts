import { describe, expect, it } from "vitest";
import {
  type FenceElements,
  fencePortScript,
  fenceTableScript,
  NO_ELEMENTS,
  parseFenceElements,
} from "../src/drivers/guest-fence-rules.ts";

const A = { tap: "mk-0000f001", mac: "52:54:00:0a:0a:0a", ip: "10.66.0.2" };
const lines = (script: string): string[] => script.split("\n").filter(Boolean);

/** `nft -j list table bridge mikrom` as nft 1.0.6 prints it (rules left out), A and B fenced. */
const LISTED = JSON.stringify({
  nftables: [
    { metainfo: { version: "1.0.6", json_schema_version: 1 } },
    { table: { family: "bridge", name: "mikrom", handle: 1 } },
    {
      set: {
        family: "bridge",
        name: "guest_ports",
        table: "mikrom",
        type: "ifname",
        elem: [A.tap, "mk-0000f002"],
      },
    },
    {
      set: {
        family: "bridge",
        name: "guest_macs",
        table: "mikrom",
        type: ["ifname", "ether_addr"],
        elem: [{ concat: [A.tap, A.mac] }, { concat: ["mk-0000f002", "52:54:00:0B:0B:0B"] }],
      },
    },
    {
      set: {
        family: "bridge",
        name: "guest_ips",
        table: "mikrom",
        type: ["ifname", "ipv4_addr"],
        elem: [{ concat: [A.tap, A.ip] }, { elem: { val: { concat: ["mk-0000f002", "10.66.0.3"] } } }],
      },
    },
    {
      set: {
        family: "bridge",
        name: "guest_addrs",
        table: "mikrom",
        type: "ipv4_addr",
        elem: [A.ip, "10.66.0.3"],
      },
    },
    { chain: { family: "bridge", table: "mikrom", name: "guests", hook: "prerouting" } },
  ],
});

describe("the guests' fence, as nft text", () => {
  it("reads the sets' elements from nft's JSON, plain, concatenated or wrapped, MACs in lower case", () => {
    expect(parseFenceElements(LISTED)).toEqual({
      ports: [A.tap, "mk-0000f002"],
      macs: [
        [A.tap, A.mac],
        ["mk-0000f002", "52:54:00:0b:0b:0b"],
      ],
      ips: [
        [A.tap, A.ip],
        ["mk-0000f002", "10.66.0.3"],
      ],
      addrs: [A.ip, "10.66.0.3"],
    });
    // Sets with no element have no `elem` at all.
    expect(
      parseFenceElements(JSON.stringify({ nftables: [{ set: { name: "guest_ports", type: "ifname" } }] })),
    ).toEqual(NO_ELEMENTS);
  });

  it("makes the table in one transaction that flushes its chains before writing them, never its sets", () => {
    const script = lines(fenceTableScript());
    expect(script[0]).toBe("add table bridge mikrom");
    expect(script).toContain(
      "add chain bridge mikrom guests { type filter hook prerouting priority filter; policy accept; }",
    );
    const lastFlush = script.findLastIndex((line) => line.startsWith("flush chain"));
    const firstRule = script.findIndex((line) => line.startsWith("add rule"));
    expect(script.filter((line) => line.startsWith("flush chain"))).toHaveLength(3);
    expect(lastFlush).toBeLessThan(firstRule);
    expect(script.some((line) => /flush (set|table|ruleset)|delete/.test(line))).toBe(false);
    // The ports that are not a guest's pass first; a guest's frame is ARP or IPv4 or nothing.
    const guests = script.filter((line) => line.startsWith("add rule bridge mikrom guests "));
    expect(guests[0]).toBe("add rule bridge mikrom guests iifname != @guest_ports accept");
    expect(guests.at(-1)).toBe("add rule bridge mikrom guests drop");
    expect(fenceTableScript()).toBe(fenceTableScript());
  });

  it("fences a new tap with four elements, and adds nothing but the same four when they are there", () => {
    const fresh = lines(fencePortScript(A.tap, A, NO_ELEMENTS));
    expect(fresh).toEqual([
      `add element bridge mikrom guest_macs { "${A.tap}" . ${A.mac} }`,
      `add element bridge mikrom guest_ips { "${A.tap}" . ${A.ip} }`,
      `add element bridge mikrom guest_addrs { ${A.ip} }`,
      `add element bridge mikrom guest_ports { "${A.tap}" }`,
    ]);
    expect(lines(fencePortScript(A.tap, A, parseFenceElements(LISTED)))).toEqual(fresh);
    expect(lines(fencePortScript(A.tap, { ...A, mac: A.mac.toUpperCase() }, NO_ELEMENTS))).toEqual(fresh);
  });

  it("replaces what a tap was allowed before, keeping an address another tap still holds", () => {
    const current: FenceElements = {
      ports: [A.tap, "mk-other"],
      macs: [[A.tap, "52:54:00:99:99:99"]],
      ips: [
        [A.tap, "10.66.0.9"],
        [A.tap, "10.66.0.7"],
        ["mk-other", "10.66.0.7"],
      ],
      addrs: ["10.66.0.9", "10.66.0.7"],
    };
    const script = lines(fencePortScript(A.tap, A, current));
    const deleted = script.filter((line) => line.startsWith("delete"));
    expect(deleted).toEqual([
      `delete element bridge mikrom guest_macs { "${A.tap}" . 52:54:00:99:99:99 }`,
      `delete element bridge mikrom guest_ips { "${A.tap}" . 10.66.0.9 }`,
      `delete element bridge mikrom guest_ips { "${A.tap}" . 10.66.0.7 }`,
      "delete element bridge mikrom guest_addrs { 10.66.0.9 }",
    ]);
    // Each delete follows an add of the same element, so it holds whether or not the element is there.
    for (const line of deleted) expect(script[script.indexOf(line) - 1]).toBe(line.replace(/^delete/, "add"));
  });

  it("releases every element of the tap and none of another's; releasing a tap with none is fine", () => {
    const script = lines(fencePortScript(A.tap, undefined, parseFenceElements(LISTED)));
    expect(script.filter((line) => line.startsWith("delete"))).toEqual([
      `delete element bridge mikrom guest_macs { "${A.tap}" . ${A.mac} }`,
      `delete element bridge mikrom guest_ips { "${A.tap}" . ${A.ip} }`,
      `delete element bridge mikrom guest_addrs { ${A.ip} }`,
      `delete element bridge mikrom guest_ports { "${A.tap}" }`,
    ]);
    expect(script.some((line) => line.includes("f002") || line.includes("10.66.0.3"))).toBe(false);
    expect(lines(fencePortScript(A.tap, undefined, NO_ELEMENTS))).toEqual([
      `add element bridge mikrom guest_ports { "${A.tap}" }`,
      `delete element bridge mikrom guest_ports { "${A.tap}" }`,
    ]);
  });

  it("refuses anything that is not plainly a tap name, a MAC or an IPv4 address (the text goes to nft)", () => {
    const bad = [
      { ...A, tap: 'mk-1" } ; flush ruleset' },
      { ...A, tap: "a-name-longer-than-15" },
      { ...A, mac: "52:54:00:0a:0a" },
      { ...A, mac: "52:54:00:0a:0a:0a }" },
      { ...A, ip: "10.66.0.256" },
      { ...A, ip: "10.66.0.2/24" },
    ];
    for (const port of bad) expect(() => fencePortScript(port.tap, port, NO_ELEMENTS)).toThrow(/^not an? /);
    expect(() => fencePortScript("mk-b", A, NO_ELEMENTS)).toThrow(/not mk-b/);
    expect(() => fencePortScript("x y", undefined, NO_ELEMENTS)).toThrow(/not a tap name/);
  });
});
