import { describe, expect, it } from "vitest";
import { expiredHosts, type HostLoad, pickHost } from "../src/domain/hosts.ts";

const NOW = 100_000;
const TIMEOUT = 10_000;
const host = (hostId: string, over: Partial<HostLoad> = {}): HostLoad => ({
  hostId,
  driver: "fake",
  vcpus: 4,
  memoryMb: 4096,
  lastSeenMs: NOW - 1000,
  live: true,
  usedVcpus: 0,
  usedMemoryMb: 0,
  ...over,
});
const need = { vcpuCount: 2, memoryMb: 1024 };

describe("host scheduling", () => {
  it("places a VM on the live host with the most free memory", () => {
    const hosts = [host("a", { usedMemoryMb: 2048 }), host("b", { usedMemoryMb: 512 })];
    expect(pickHost(hosts, need, NOW, TIMEOUT)).toBe("b");
  });

  it("skips hosts without room in vCPUs or memory", () => {
    const hosts = [
      host("a", { usedVcpus: 3 }),
      host("b", { usedMemoryMb: 3500 }),
      host("c", { usedVcpus: 2 }),
    ];
    expect(pickHost(hosts, need, NOW, TIMEOUT)).toBe("c");
  });

  it("skips hosts whose heartbeat is too old or that said they stopped", () => {
    const hosts = [host("a", { lastSeenMs: NOW - TIMEOUT - 1 }), host("b", { live: false })];
    expect(pickHost(hosts, need, NOW, TIMEOUT)).toBeNull();
  });

  it("breaks ties by host id so the choice is the same every time", () => {
    expect(pickHost([host("z"), host("m")], need, NOW, TIMEOUT)).toBe("m");
  });

  it("finds the live hosts whose heartbeat expired", () => {
    const hosts = [
      host("a"),
      host("b", { lastSeenMs: NOW - TIMEOUT - 1 }),
      host("c", { live: false, lastSeenMs: 0 }),
    ];
    expect(expiredHosts(hosts, NOW, TIMEOUT)).toEqual(["b"]);
  });
});
