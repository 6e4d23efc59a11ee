import { describe, expect, it } from "vitest";
import { type HostLoad, isUnreachable, judgeHosts, pickHost } from "../src/domain/hosts.ts";

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

  it("breaks ties by host id so the choice is the same every time", () => {
    expect(pickHost([host("z"), host("m")], need, NOW, TIMEOUT)).toBe("m");
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
});
