import { describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.ts";
import type { Host, Vm } from "../src/console/api-types.ts";
import { eventSummary, localPath } from "../src/console/format.ts";
import { traceUrl } from "../src/console/grafana.ts";
import { allocationsOf, inRange } from "../src/console/pools.ts";
import { hostsPage } from "../src/console/views/hosts.ts";

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

describe("console: hosts", () => {
  const host = (id: string, more: Partial<Host> = {}): Host => ({
    id,
    driver: "qemu",
    vcpus: 8,
    memory_mb: 2048,
    status: "up",
    registered_at: "2025-01-01T00:00:00.000Z",
    last_seen_at: "2025-01-01T00:59:50.000Z",
    stopped_at: null,
    vms: 2,
    running_vms: 1,
    ...more,
  });
  const rowOf = (html: string, id: string) =>
    html.slice(html.indexOf(`<code>${id}</code>`)).split("</tr>")[0]!;

  it("shows each host's state, capacity, VMs and last heartbeat, as the hosts route gives them", async () => {
    const html = String(
      await hostsPage(
        [
          host("h1"),
          host("h2", { status: "unreachable", stopped_at: "2025-01-01T00:30:00.000Z", running_vms: null }),
          host("h3", { status: "lost" }),
        ],
        Date.parse("2025-01-01T01:00:00.000Z"),
      ),
    );
    expect(rowOf(html, "h1")).toMatch(
      /tag-ok">up<[\s\S]*8 vCPU · 2 GiB[\s\S]*2 \(host says 1 running\)[\s\S]*10 s ago/,
    );
    expect(rowOf(html, "h2")).toMatch(/tag-warn">stopped</);
    expect(rowOf(html, "h2")).not.toContain("host says");
    expect(rowOf(html, "h3")).toMatch(/tag-warn">lost</);
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
