import { hostDatabaseUrl } from "@mikrom/runtime";
import { describe, expect, it } from "vitest";
import { concurrencyFor, hostIdFromHostname, loadConfig } from "../src/config.ts";

describe("the agent's configuration", () => {
  it("derives the host's own database from the base one", () => {
    expect(hostDatabaseUrl("postgres://u@db:5432/mikrom", "node-1")).toBe(
      "postgres://u@db:5432/mikrom_provisioner_node-1",
    );
  });

  it("connects to its host's database as the role DATABASE_URL names, unless PROVISIONER_DATABASE_URL says", () => {
    const base = { MIKROM_HOST_ID: "hv-1", MIKROM_DRIVER: "fake", MIKROM_RUN_DIR: "/tmp/x" };
    const own = "postgres://mikrom_provisioner_hv-1:pw@db:5432/mikrom";
    expect(loadConfig({ ...base, DATABASE_URL: own }).databaseUrl).toBe(
      "postgres://mikrom_provisioner_hv-1:pw@db:5432/mikrom_provisioner_hv-1",
    );
    expect(loadConfig({ ...base, MIKROM_HOST_ID: "hv-2", DATABASE_URL: own }).databaseUrl).toBe(
      "postgres://mikrom_provisioner_hv-1:pw@db:5432/mikrom_provisioner_hv-2",
    );
    // A role the URL names outright is the user's: kept.
    expect(loadConfig({ ...base, PROVISIONER_DATABASE_URL: "postgres://me:pw@db/mine" }).databaseUrl).toBe(
      "postgres://me:pw@db/mine",
    );
  });

  it("keeps a long database name within PostgreSQL's 63 bytes, distinct per host", () => {
    const a = new URL(hostDatabaseUrl("postgres://db/mikrom", "a".repeat(60))).pathname.slice(1);
    const b = new URL(hostDatabaseUrl("postgres://db/mikrom", `${"a".repeat(59)}b`)).pathname.slice(1);
    expect(a.length).toBeLessThanOrEqual(63);
    expect(a).not.toBe(b);
  });

  it("handles 4 commands at once per core of the host unless told, between 4 and 64", () => {
    expect([1, 2, 8, 16, 32].map(concurrencyFor)).toEqual([4, 8, 32, 64, 64]);
    const base = { MIKROM_HOST_ID: "hv-1", MIKROM_DRIVER: "fake", MIKROM_RUN_DIR: "/tmp/x" };
    expect(loadConfig({ ...base, PROVISIONER_CONCURRENCY: "3" }).concurrency).toBe(3);
    // An empty variable (compose's and the k8s ConfigMap's) is the host's default, not 0.
    expect(loadConfig({ ...base, PROVISIONER_CONCURRENCY: "" }).concurrency).toBeGreaterThanOrEqual(4);
  });

  it("makes a host id from a hostname with dots", () => {
    expect(hostIdFromHostname("hv-7.rack2.example.com")).toBe("hv-7-rack2-example-com");
  });

  it("reads the host, its capacity and the driver, with defaults", () => {
    const config = loadConfig({
      MIKROM_HOST_ID: "hv-1",
      MIKROM_HOST_VCPUS: "16",
      MIKROM_HOST_MEMORY_MB: "65536",
      MIKROM_DRIVER: "fake",
      MIKROM_RUN_DIR: "/tmp/x",
    });
    expect(config).toMatchObject({
      hostId: "hv-1",
      vcpus: 16,
      memoryMb: 65536,
      namespace: "mikrom",
      heartbeatIntervalMs: 10_000,
      stopVmsOnExit: false,
      databaseUrl: "postgres://postgres@127.0.0.1:5432/mikrom_provisioner_hv-1",
      driver: { driver: "fake", runDir: "/tmp/x" },
    });
  });

  it("names every malformed variable in one error", () => {
    expect(() =>
      loadConfig({ MIKROM_HOST_ID: "no spaces", HEARTBEAT_INTERVAL_MS: "soon", MIKROM_DRIVER: "vmware" }),
    ).toThrow(/MIKROM_HOST_ID[\s\S]*HEARTBEAT_INTERVAL_MS[\s\S]*MIKROM_DRIVER/);
  });
});
