import { describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.ts";
import { eventSummary, localPath } from "../src/console/format.ts";
import { traceUrl } from "../src/console/grafana.ts";

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
    for (const away of ["//evil.example", "/\\evil.example", "https://evil.example", "", undefined])
      expect(localPath(away)).toBe("/");
  });

  it("reads GRAFANA_URL, empty meaning unset", () => {
    expect(loadConfig({ GRAFANA_URL: "http://grafana:3000/" }).grafanaUrl).toBe("http://grafana:3000");
    expect(loadConfig({ GRAFANA_URL: "" }).grafanaUrl).toBeUndefined();
    expect(() => loadConfig({ GRAFANA_URL: "javascript:alert(1)" })).toThrow(/GRAFANA_URL/);
  });
});
