import { describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.ts";

describe("configuration", () => {
  it("defaults give the default pool 172.16.0.0/24 with gateway .1 and range .2-.254", () => {
    const config = loadConfig({});
    expect(config.defaultPool).toEqual({
      cidr: "172.16.0.0/24",
      gateway: "172.16.0.1",
      rangeStart: "172.16.0.2",
      rangeEnd: "172.16.0.254",
    });
    expect(config.namespace).toBe("mikrom");
  });

  it("the service's database is derived from the base one", () => {
    expect(loadConfig({ DATABASE_URL: "postgres://u:p@db:5432/mikrom?sslmode=disable" }).databaseUrl).toBe(
      "postgres://u:p@db:5432/mikrom_ippool?sslmode=disable",
    );
    expect(loadConfig({ DATABASE_URL: "postgres://postgres@127.0.0.1:5432/x" }).databaseUrl).toBe(
      "postgres://postgres@127.0.0.1:5432/x_ippool",
    );
  });

  it("names every malformed variable at once", () => {
    const message = (() => {
      try {
        loadConfig({ IPPOOL_DEFAULT_CIDR: "10.0.0.1/24", MIKROM_NAMESPACE: "a.b", LOG_FORMAT: "xml" });
        return "";
      } catch (error) {
        return (error as Error).message;
      }
    })();
    expect(message).toContain(
      'IPPOOL_DEFAULT_CIDR: "10.0.0.1/24" has host bits set; the network is 10.0.0.0/24',
    );
    expect(message).toContain("MIKROM_NAMESPACE: letters, digits");
    expect(message).toContain("LOG_FORMAT: ");
  });
});
