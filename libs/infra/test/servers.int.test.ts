import { execFile, spawn } from "node:child_process";
import { chmod, mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { connect } from "@nats-io/transport-node";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { findNatsServer, probePostgres, startOwnServers } from "../src/index.ts";

const run = promisify(execFile);

async function query(url: string, sql: string): Promise<Record<string, unknown>[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql)).rows;
  } finally {
    await client.end();
  }
}

/** What still runs with `marker` in its command line. */
async function running(marker: string): Promise<string> {
  return run("pgrep", ["-a", "-f", marker]).then(
    (r) => r.stdout.trim(),
    () => "",
  );
}

async function until(what: string, ok: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("servers of Mikrom's own", () => {
  it("start, keep their data across a restart in the same folder, and stop leaving nothing", async () => {
    const home = await mkdtemp(join(tmpdir(), "mikrom-infra-servers-"));
    try {
      const first = await startOwnServers({
        home,
        postgres: { database: "postgres" },
        nats: { binary: findNatsServer()! },
      });
      expect(first.postgres?.initialised).toBe(true);
      expect(first.postgres?.url).toMatch(/^postgres:\/\/postgres:[^@]+@127\.0\.0\.1:\d+\/postgres$/);
      await query(first.postgres!.url, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')");
      const nc = await connect({ servers: first.nats!.url });
      expect(nc.info?.jetstream).toBe(true);
      await nc.close();
      // Its password is its owner's alone; without it the server says no.
      expect((await stat(join(home, "postgres-password"))).mode & 0o777).toBe(0o600);
      const port = new URL(first.postgres!.url).port;
      expect(await probePostgres(`postgres://postgres:wrong@127.0.0.1:${port}/postgres`)).toEqual({
        what: 'rejected the password of user "postgres"',
        absent: false,
      });
      await first.stop();
      expect(await running(home)).toBe("");

      const second = await startOwnServers({ home, postgres: { database: "postgres" } });
      expect(second.postgres?.initialised).toBe(false);
      expect(await query(second.postgres!.url, "SELECT v FROM kept")).toEqual([{ v: "still here" }]);
      await second.stop();
      expect(await running(home)).toBe("");
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  }, 90_000);

  it.runIf(process.getuid?.() === 0)(
    "as root, a folder the postgres user cannot enter is named, with what to do, before anything starts",
    async () => {
      const closed = await mkdtemp(join(tmpdir(), "mikrom-infra-closed-"));
      await chmod(closed, 0o700);
      try {
        const error = (await startOwnServers({
          home: join(closed, "home"),
          postgres: { database: "postgres" },
        }).catch((e: unknown) => e)) as Error;
        expect(error.message).toContain(
          `the embedded PostgreSQL runs as the user "postgres" (PostgreSQL refuses root)`,
        );
        expect(error.message).toContain(
          `(${closed} is closed to it): keep the project and MIKROM_HOME in folders`,
        );
        expect(await running(closed)).toBe("");
      } finally {
        await rm(closed, { recursive: true, force: true });
      }
    },
    30_000,
  );

  it("stop when the process that started them is killed", async () => {
    const home = await mkdtemp(join(tmpdir(), "mikrom-infra-orphan-"));
    const fixture = join(import.meta.dirname, "fixtures", "start-and-wait.ts");
    const parent = spawn(process.execPath, [fixture, home], { stdio: ["ignore", "pipe", "inherit"] });
    try {
      const line = await new Promise<string>((resolve, reject) => {
        createInterface({ input: parent.stdout! }).once("line", resolve);
        parent.once("exit", (code) => reject(new Error(`the fixture exited (${code})`)));
      });
      const { postgres } = JSON.parse(line) as { postgres: { url: string } };
      expect(await probePostgres(postgres.url)).toBeUndefined();
      expect(await running(home)).not.toBe("");
      parent.kill("SIGKILL");
      await until("the keeper, PostgreSQL and nats-server gone", async () => (await running(home)) === "");
    } finally {
      parent.kill("SIGKILL");
      await rm(home, { recursive: true, force: true });
    }
  }, 90_000);
});
