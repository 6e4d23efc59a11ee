import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../src/config.ts";

describe("configuration", () => {
  it("uses a database of its own next to the base one", () => {
    const c = loadConfig({ DATABASE_URL: "postgres://u@db:5432/mikrom" });
    expect(c.databaseUrl).toBe("postgres://u@db:5432/mikrom_vm");
    expect(c).toMatchObject({ namespace: "mikrom", maxVmsPerUser: 10 });
  });

  it("takes a deadline per step from the environment", () => {
    expect(loadConfig({ BOOT_TIMEOUT_MS: "250" }).deadlines.boot).toBe(250);
    expect(loadConfig({ SCHEDULE_TIMEOUT_MS: "400" }).deadlines.schedule).toBe(400);
    expect(loadConfig({}).deadlines.schedule).toBe(30_000);
  });

  it("names every malformed variable at once", () => {
    expect(() => loadConfig({ MAX_VMS_PER_USER: "lots", BOOT_TIMEOUT_MS: "-1" })).toThrow(ConfigError);
    expect(() => loadConfig({ MAX_VMS_PER_USER: "lots", BOOT_TIMEOUT_MS: "-1" })).toThrow(
      /MAX_VMS_PER_USER[\s\S]*BOOT_TIMEOUT_MS/,
    );
  });
});
