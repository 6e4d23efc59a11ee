import { createServer } from "node:net";
import { describe, expect, it } from "vitest";
import { InfrastructureMissing, resolveInfrastructure } from "../src/index.ts";
import { isStale, uniqueName } from "../src/names.ts";

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe("finding infrastructure", () => {
  it("fails fast, naming PostgreSQL and how to start it, when it is down", async () => {
    const env = {
      NATS_URL: "nats://127.0.0.1:4222",
      DATABASE_URL: `postgres://postgres@127.0.0.1:${await closedPort()}/x`,
    };
    const started = Date.now();
    const error = await resolveInfrastructure(env).catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(error).toBeInstanceOf(InfrastructureMissing);
    const message = (error as Error).message;
    expect(message).toMatch(
      /PostgreSQL is not reachable at postgres:\/\/postgres@127\.0\.0\.1:\d+\/x \(ECONNREFUSED\)/,
    );
    expect(message).toContain("pg_ctlcluster --skip-systemctl-redirect");
    expect(message).not.toMatch(/NATS is not usable/);
    expect((error as Error).stack).not.toMatch(/\n\s+at /);
  });

  it("names NATS when it is the one missing", async () => {
    const env = {
      NATS_URL: `nats://127.0.0.1:${await closedPort()}`,
      DATABASE_URL: "postgres://postgres@127.0.0.1:5432/postgres",
    };
    const error = (await resolveInfrastructure(env).catch((e: unknown) => e)) as Error;
    expect(error.message).toMatch(/NATS is not usable at nats:\/\/127\.0\.0\.1:\d+/);
    expect(error.message).toContain("nats-server -- -a 127.0.0.1 -p 4222 -js");
    expect(error.message).not.toMatch(/PostgreSQL is not reachable/);
  });

  it("takes the servers from NATS_URL and DATABASE_URL when they answer", async () => {
    const env = {
      NATS_URL: "nats://127.0.0.1:4222",
      DATABASE_URL: "postgres://postgres@127.0.0.1:5432/postgres",
    };
    const infra = await resolveInfrastructure(env);
    expect(infra).toMatchObject({ natsUrl: env.NATS_URL, databaseUrl: env.DATABASE_URL });
    await infra.stop();
  });
});

describe("test resource names", () => {
  it("are unique and become stale only after two hours", () => {
    const a = uniqueName();
    expect(a).not.toBe(uniqueName());
    expect(isStale(a)).toBe(false);
    expect(isStale(a, Date.now() + 3 * 60 * 60 * 1000)).toBe(true);
    expect(isStale("mikrom")).toBe(false);
  });
});
