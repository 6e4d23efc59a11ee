import { describe, expect, it } from "vitest";
import { type HostLoad, isUnreachable, judgeHosts, noRoomMessage, pickHost } from "../src/domain/hosts.ts";

const NOW = 100_000;
const TIMEOUT = 10_000;
const host = (hostId: string, over: Partial<HostLoad> = {}): HostLoad => ({
  hostId,
  driver: "fake",
  vcpus: 4,
  memoryMb: 4096,
  status: "up",
  lastSeenMs: NOW - 1000,
  unreachableSinceMs: null,
  vms: 0,
  usedVcpus: 0,
  usedMemoryMb: 0,
  ...over,
});
const need = { vcpuCount: 2, memoryMb: 1024 };

describe("host scheduling", () => {
  it("places a VM on the live host least loaded once it holds it", () => {
    const hosts = [host("a", { usedMemoryMb: 2048 }), host("b", { usedMemoryMb: 512 })];
    expect(pickHost(hosts, need, NOW, TIMEOUT)).toBe("b");
    const busier = [host("a", { vms: 1, usedVcpus: 1 }), host("b")];
    expect(pickHost(busier, need, NOW, TIMEOUT)).toBe("b");
  });

  it("balances VMs and memory together: a small VM goes where few VMs are, a large one where little memory is used", () => {
    const size = { vcpus: 64, memoryMb: 65_536 };
    const hosts = [
      host("many-small", { ...size, vms: 10, usedVcpus: 10, usedMemoryMb: 5120 }),
      host("few-large", { ...size, vms: 2, usedVcpus: 8, usedMemoryMb: 16_384 }),
    ];
    expect(pickHost(hosts, { vcpuCount: 1, memoryMb: 512 }, NOW, TIMEOUT)).toBe("few-large");
    expect(pickHost(hosts, { vcpuCount: 4, memoryMb: 8192 }, NOW, TIMEOUT)).toBe("many-small");
  });

  it("counts vCPUs as well: of two hosts with the same VMs and memory, the one with fewer vCPUs taken", () => {
    const size = { vcpus: 16, memoryMb: 16_384 };
    const hosts = [
      host("a", { ...size, vms: 2, usedVcpus: 8, usedMemoryMb: 2048 }),
      host("b", { ...size, vms: 2, usedVcpus: 2, usedMemoryMb: 2048 }),
    ];
    expect(pickHost(hosts, { vcpuCount: 1, memoryMb: 512 }, NOW, TIMEOUT)).toBe("b");
    // The VM's own vCPUs count: a 6-vCPU VM makes b's vCPU share the largest of both, yet below a's.
    const wide = [
      host("a", { ...size, vms: 2, usedVcpus: 9, usedMemoryMb: 2048 }),
      host("b", { ...size, vms: 2, usedVcpus: 2, usedMemoryMb: 2048 }),
    ];
    expect(pickHost(wide, { vcpuCount: 6, memoryMb: 512 }, NOW, TIMEOUT)).toBe("b");
  });

  it("loads hosts by their share, not by what they have free: a large host mostly full yields to an empty small one", () => {
    const hosts = [
      host("large", { vcpus: 16, memoryMb: 16_384, vms: 11, usedVcpus: 11, usedMemoryMb: 11_264 }),
      host("small"),
    ];
    expect(pickHost(hosts, need, NOW, TIMEOUT)).toBe("small");
    // At the same share, the host twice the size holds twice the VMs.
    const even = [
      host("large", { vcpus: 8, memoryMb: 8192, vms: 4, usedVcpus: 4, usedMemoryMb: 4096 }),
      host("small", { vms: 2, usedVcpus: 2, usedMemoryMb: 2048 }),
    ];
    expect(pickHost(even, { vcpuCount: 1, memoryMb: 512 }, NOW, TIMEOUT)).toBe("large");
  });

  it("keeps 1,000 VMs of mixed sizes on 10 hosts, two of them twice as large, within 1.2 of even in VMs and memory", () => {
    const sizes = [
      [1, 512],
      [2, 1024],
      [2, 2048],
      [4, 4096],
      [1, 1024],
      [8, 8192],
    ] as const;
    let hosts = Array.from({ length: 10 }, (_, i) =>
      host(`h${i}`, i < 2 ? { vcpus: 1024, memoryMb: 2_097_152 } : { vcpus: 512, memoryMb: 1_048_576 }),
    );
    // A fixed, uneven order of sizes (a linear congruential sequence), the same every run.
    let seed = 7;
    for (let n = 0; n < 1000; n++) {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      const [vcpuCount, memoryMb] = sizes[seed % sizes.length]!;
      const chosen = pickHost(hosts, { vcpuCount, memoryMb }, NOW, TIMEOUT);
      hosts = hosts.map((h) =>
        h.hostId === chosen
          ? {
              ...h,
              vms: h.vms + 1,
              usedVcpus: h.usedVcpus + vcpuCount,
              usedMemoryMb: h.usedMemoryMb + memoryMb,
            }
          : h,
      );
    }
    const spread = (share: (h: HostLoad) => number): number =>
      Math.max(...hosts.map(share)) / Math.min(...hosts.map(share));
    expect(hosts.reduce((sum, h) => sum + h.vms, 0)).toBe(1000);
    expect(spread((h) => h.vms / h.vcpus)).toBeLessThanOrEqual(1.2);
    expect(spread((h) => h.usedMemoryMb / h.memoryMb)).toBeLessThanOrEqual(1.2);
    expect(spread((h) => h.usedVcpus / h.vcpus)).toBeLessThanOrEqual(1.2);
  });

  it.each<[string, Partial<HostLoad>, boolean]>([
    ["exactly the vCPUs and the memory free", { usedVcpus: 2, usedMemoryMb: 3072 }, true],
    ["one vCPU short", { usedVcpus: 3 }, false],
    ["one MB short", { usedMemoryMb: 3073 }, false],
    ["vCPUs to spare but no memory", { usedMemoryMb: 4096 }, false],
  ])("a host with %s takes the VM: %s", (_, load, fits) => {
    expect(pickHost([host("a", load)], need, NOW, TIMEOUT)).toBe(fits ? "a" : null);
  });

  it("skips hosts without room in vCPUs or memory, however much else they have free", () => {
    const hosts = [
      host("a", { usedVcpus: 3 }),
      host("b", { vcpus: 64, usedMemoryMb: 3500 }),
      host("c", { usedVcpus: 2, usedMemoryMb: 1024 }),
    ];
    expect(pickHost(hosts, need, NOW, TIMEOUT)).toBe("c");
  });

  it("skips hosts whose heartbeat is too old, and hosts unreachable or lost", () => {
    const hosts = [
      host("a", { lastSeenMs: NOW - TIMEOUT - 1 }),
      host("b", { status: "unreachable", unreachableSinceMs: NOW - 1 }),
      host("c", { status: "lost" }),
    ];
    expect(pickHost(hosts, need, NOW, TIMEOUT)).toBeNull();
    // A heartbeat exactly at the timeout still counts.
    expect(pickHost([host("d", { lastSeenMs: NOW - TIMEOUT })], need, NOW, TIMEOUT)).toBe("d");
  });

  it("breaks ties by the fewest VMs, then by host id, so the choice is the same every time", () => {
    expect(pickHost([host("z"), host("m")], need, NOW, TIMEOUT)).toBe("m");
    expect(pickHost([host("m"), host("z")], need, NOW, TIMEOUT)).toBe("m");
    // Equally loaded (by vCPUs, the largest share of both): the one with fewer VMs.
    const tied = [
      host("a", { vms: 2, usedVcpus: 1, usedMemoryMb: 2048 }),
      host("z", { vms: 1, usedVcpus: 1, usedMemoryMb: 2048 }),
    ];
    expect(pickHost(tied, need, NOW, TIMEOUT)).toBe("z");
    expect(pickHost([...tied].reverse(), need, NOW, TIMEOUT)).toBe("z");
  });

  it("finds hosts gone silent (unreachable) and hosts silent past the grace (lost)", () => {
    const LOST_AFTER = 60_000;
    const hosts = [
      host("a"),
      host("b", { lastSeenMs: NOW - TIMEOUT - 1 }),
      host("c", { lastSeenMs: NOW - TIMEOUT }),
      host("d", { status: "unreachable", unreachableSinceMs: NOW - LOST_AFTER - 1, lastSeenMs: 0 }),
      host("e", { status: "unreachable", unreachableSinceMs: NOW - LOST_AFTER, lastSeenMs: 0 }),
      host("f", { status: "lost", unreachableSinceMs: 0, lastSeenMs: 0 }),
      // Unreachable with no time it became so (hand-made registry rows): never judged lost.
      host("g", { status: "unreachable", unreachableSinceMs: null, lastSeenMs: 0 }),
    ];
    expect(judgeHosts(hosts, NOW, { heartbeatTimeoutMs: TIMEOUT, lostAfterMs: LOST_AFTER })).toEqual({
      unreachable: ["b"],
      lost: ["d"],
    });
  });

  it("judges by when heartbeats arrived: a host whose own clock is 10 minutes off is alive", () => {
    // Arrival times are this service's; the host's clock never enters the registry.
    const skewed = host("a", { lastSeenMs: NOW - 500 });
    expect(judgeHosts([skewed], NOW, { heartbeatTimeoutMs: TIMEOUT, lostAfterMs: 1 })).toEqual({
      unreachable: [],
      lost: [],
    });
    expect(pickHost([skewed], need, NOW, TIMEOUT)).toBe("a");
  });

  it("calls a host unreachable only when it is known and silent", () => {
    const hosts = [host("a", { status: "unreachable", unreachableSinceMs: NOW }), host("b")];
    expect([isUnreachable(hosts, "a"), isUnreachable(hosts, "b"), isUnreachable(hosts, "x")]).toEqual([
      true,
      false,
      false,
    ]);
    expect(isUnreachable(hosts, null)).toBe(false);
  });

  it.each<[string, HostLoad[], string]>([
    ["no host at all", [], "no live provisioner host"],
    [
      "only hosts silent past the timeout, unreachable or lost",
      [
        host("a", { lastSeenMs: NOW - TIMEOUT - 1 }),
        host("b", { status: "unreachable", unreachableSinceMs: NOW }),
        host("c", { status: "lost" }),
      ],
      "no live provisioner host",
    ],
    [
      "live hosts without room",
      [host("a", { usedVcpus: 4 }), host("b", { usedMemoryMb: 4096 }), host("c", { status: "lost" })],
      "no live host with room for 2 vCPU and 1024 MB (2 live)",
    ],
    [
      "a host heard exactly at the timeout, without room",
      [host("a", { lastSeenMs: NOW - TIMEOUT, usedVcpus: 4 })],
      "no live host with room for 2 vCPU and 1024 MB (1 live)",
    ],
  ])("says why no host was found: %s", (_, hosts, message) => {
    expect(noRoomMessage(hosts, need, NOW, TIMEOUT)).toBe(message);
  });
});
