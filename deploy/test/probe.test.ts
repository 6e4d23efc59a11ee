import { execFile } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { healthUrl } from "../docker/probe.ts";
import { repoRoot } from "../src/env-reads.ts";

const probePath = join(repoRoot, "deploy", "docker", "probe.ts");

/** Runs the probe as the image does; its exit code and what it wrote to stderr. */
function runProbe(args: string[], env: Record<string, string>): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [probePath, ...args], { env, timeout: 10_000 }, (error, _stdout, stderr) =>
      resolve({ code: error ? Number(error.code ?? 1) : 0, stderr }),
    );
  });
}

describe("the health probe (deploy/docker/probe.ts)", () => {
  let server: Server;
  let port: string;
  beforeAll(async () => {
    server = createServer((req, res) => {
      res.statusCode = req.url === "/health/ready" ? 200 : 503;
      res.end();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = String((server.address() as AddressInfo).port);
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  test("asks the port in the variable it is told to read", () => {
    expect(healthUrl(["PORT", "/health"], { PORT: "8080", HEALTH_PORT: "9090" })).toBe(
      "http://127.0.0.1:8080/health",
    );
    expect(healthUrl(["HEALTH_PORT", "/health/ready"], { PORT: "8080", HEALTH_PORT: "9090" })).toBe(
      "http://127.0.0.1:9090/health/ready",
    );
  });

  test("is healthy when the path answers 2xx", async () => {
    expect(await runProbe(["HEALTH_PORT", "/health/ready"], { HEALTH_PORT: port })).toEqual({
      code: 0,
      stderr: "",
    });
  });

  test("is unhealthy, saying why, when the path answers 503", async () => {
    const { code, stderr } = await runProbe(["HEALTH_PORT", "/health"], { HEALTH_PORT: port });
    expect(code).toBe(1);
    expect(stderr).toMatch(/unhealthy: .*\/health: HTTP 503/);
  });

  test("is unhealthy when nothing listens on the port", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const free = String((closed.address() as AddressInfo).port);
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const { code, stderr } = await runProbe(["PORT", "/health"], { PORT: free });
    expect(code).toBe(1);
    expect(stderr).toMatch(/unhealthy: connect ECONNREFUSED 127\.0\.0\.1:/);
  });

  test("refuses an unset variable and wrong arguments before asking anything", () => {
    expect(healthUrl(["HEALTH_PORT", "/health/ready"], {})).toEqual(
      new Error("HEALTH_PORT is not set: no port to ask /health/ready on"),
    );
    for (const args of [[], ["/health"], ["PORT", "health"], ["PORT", "/health", "extra"]])
      expect(String(healthUrl(args, { PORT: "8080" }))).toMatch(/^Error: usage: node probe\.ts/);
  });
});
