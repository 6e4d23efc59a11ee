import { describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.ts";
import type { AuditEntry, Vm } from "../src/console/api-types.ts";
import { eventSummary, localPath } from "../src/console/format.ts";
import { traceUrl } from "../src/console/grafana.ts";
import { hostsFrom } from "../src/console/hosts.ts";
import { allocationsOf, inRange } from "../src/console/pools.ts";

const entry = (type: string, host: string, at: string, data: Record<string, unknown> = {}): AuditEntry => ({
  event_id: `${type}-${host}-${at}`,
  type,
  context: "host",
  entity_id: host,
  vm_id: null,
  user_id: null,
  user_name: null,
  trace_id: null,
  recorded_at: at,
  data: { hostId: host, ...data },
});

const vm = (
  id: string,
  ip: string | null,
  host: string | null,
  hostStatus: Vm["host_status"] = null,
): Vm => ({
  vm_id: id,
  name: id,
  description: null,
  vcpu_count: 1,
  memory_mb: 256,
  ip_address: ip,
  status: "running",
  error_message: null,
  host,
  host_status: hostStatus,
  user_id: 1,
  created_at: "2025-01-01T00:00:00.000Z",
  updated_at: "2025-01-01T00:00:00.000Z",
});

describe("console: hosts from their announcements", () => {
  it("takes each host's latest registration and heartbeat, and counts the VMs placed on it", () => {
    const hosts = hostsFrom(
      [
        entry("HostRegistered", "h1", "2025-01-01T00:00:00Z", { driver: "fake", vcpus: 4, memoryMb: 1024 }),
        entry("HostRegistered", "h1", "2025-01-01T01:00:00Z", { driver: "qemu", vcpus: 8, memoryMb: 2048 }),
      ],
      [
        entry("HostHeartbeat", "h1", "2025-01-01T01:00:10Z", { runningVms: 2 }),
        entry("HostHeartbeat", "h1", "2025-01-01T01:00:05Z", { runningVms: 1 }),
      ],
      [],
      [
        vm("srv-1", "10.0.0.2", "h1", "reachable"),
        vm("srv-2", "10.0.0.3", "h1", "reachable"),
        vm("srv-3", null, null),
      ],
    );
    expect(hosts).toEqual([
      {
        id: "h1",
        driver: "qemu",
        vcpus: 8,
        memoryMb: 2048,
        registeredAt: "2025-01-01T01:00:00Z",
        lastHeartbeat: "2025-01-01T01:00:10Z",
        runningVms: 2,
        stoppedAt: null,
        vms: 2,
        reachable: true,
      },
    ]);
  });

  it("a host whose last word was HostStopped reads as stopped; one its VMs call unreachable, as unreachable", () => {
    const [h1, h2] = hostsFrom(
      [
        entry("HostRegistered", "h1", "2025-01-01T00:00:00Z"),
        entry("HostRegistered", "h2", "2025-01-01T00:00:00Z"),
      ],
      [entry("HostHeartbeat", "h1", "2025-01-01T00:01:00Z")],
      [
        entry("HostStopped", "h1", "2025-01-01T00:02:00Z"),
        entry("HostStopped", "h2", "2024-12-31T00:00:00Z"),
      ],
      [vm("srv-1", "10.0.0.2", "h2", "unreachable")],
    );
    expect(h1).toMatchObject({ id: "h1", stoppedAt: "2025-01-01T00:02:00Z", reachable: null });
    expect(h2).toMatchObject({ id: "h2", stoppedAt: null, reachable: false, vms: 1 });
  });
});

describe("console: pools", () => {
  it("an address is in a range with both ends included", () => {
    expect(inRange("172.16.0.2", "172.16.0.2", "172.16.0.254")).toBe(true);
    expect(inRange("172.16.0.254", "172.16.0.2", "172.16.0.254")).toBe(true);
    expect(inRange("172.16.1.2", "172.16.0.2", "172.16.0.254")).toBe(false);
    expect(inRange("172.16.0.300", "172.16.0.2", "172.16.0.254")).toBe(false);
  });

  it("a pool's allocations are the VMs holding its addresses, in address order", () => {
    const vms = [
      vm("b", "10.0.0.10", "h"),
      vm("a", "10.0.0.9", "h"),
      vm("c", "10.0.1.2", "h"),
      vm("d", null, null),
    ];
    expect(allocationsOf({ start_ip: "10.0.0.2", end_ip: "10.0.0.254" }, vms).map((v) => v.vm_id)).toEqual([
      "a",
      "b",
    ]);
  });
});

describe("console: words and links", () => {
  it("links a trace to Grafana's Explore on the Tempo datasource, only when Grafana is configured", () => {
    const id = "0af7651916cd43dd8448eb211c80319c";
    const url = new URL(traceUrl("http://grafana:3000", id)!);
    expect(url.origin + url.pathname).toBe("http://grafana:3000/explore");
    const panes = JSON.parse(url.searchParams.get("panes")!);
    expect(panes.trace.queries[0]).toMatchObject({ datasource: { uid: "tempo" }, query: id });
    expect(traceUrl(undefined, id)).toBeUndefined();
    expect(traceUrl("http://grafana:3000", "not-a-trace")).toBeUndefined();
  });

  it("tells what an event of a VM's history says", () => {
    expect(eventSummary({ type: "VmRunning", data: { hostId: "h1", ipAddress: "10.0.0.2" } })).toBe(
      "Running on h1 at 10.0.0.2",
    );
    expect(eventSummary({ type: "VmFailed", data: { step: "boot", errorMessage: "no kernel" } })).toBe(
      "Failed (boot): no kernel",
    );
    expect(eventSummary({ type: "Unheard", data: {} })).toBe("Unheard");
  });

  it("goes back only to a path of this console", () => {
    expect(localPath("/vms/srv-1")).toBe("/vms/srv-1");
    for (const away of [
      "//evil.example",
      "/\\evil.example",
      "https://evil.example",
      "/a\r\nSet-Cookie: x=1",
      "",
      undefined,
    ])
      expect(localPath(away)).toBe("/");
  });

  it("reads GRAFANA_URL, empty meaning unset", () => {
    expect(loadConfig({ GRAFANA_URL: "http://grafana:3000/" }).grafanaUrl).toBe("http://grafana:3000");
    expect(loadConfig({ GRAFANA_URL: "" }).grafanaUrl).toBeUndefined();
    expect(() => loadConfig({ GRAFANA_URL: "javascript:alert(1)" })).toThrow(/GRAFANA_URL/);
  });
});
