import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { chmod, mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/*
 * The stand-in jailer held to the jailer's published contract (docs/jailer.md, src/jailer of
 * v1.16.1): the driver's tests can only be as true as it is. It changes user: root only.
 */

const FAKE_JAILER = fileURLToPath(new URL("./support/firecracker/fake-jailer.ts", import.meta.url));
const UID = 400_200;
const skip = process.getuid?.() !== 0 ? "the jailer changes user: root only" : undefined;

// Made at once: the cases below name paths in it.
const dir = mkdtempSync(join(tmpdir(), "mikrom-jailer-"));
const base = join(dir, "jail");
const execFile = join(dir, "firecracker");
beforeAll(async () => {
  // The stand-in cannot chroot: the uid reaches the jail through the folders above it.
  await chmod(dir, 0o755);
  await mkdir(base);
  // What the jailer execs, telling what it became: pid, ids, folder, arguments, environment.
  await writeFile(
    execFile,
    '#!/bin/sh\necho "$$ $(id -u) $(id -g) $(id -G) $(pwd)"\nprintf "%s\\n" "$@"\necho ---\nenv\n',
    { mode: 0o755 },
  );
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function jailer(
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string; pid: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [FAKE_JAILER, ...args], {
      env: { ...process.env, LEAKED_TO_FIRECRACKER: "yes" },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr, pid: child.pid! }));
  });
}

const required = (id: string): string[] => [
  "--id",
  id,
  "--exec-file",
  execFile,
  "--uid",
  String(UID),
  "--gid",
  String(UID + 1),
  "--chroot-base-dir",
  base,
];

describe.skipIf(skip)(`the stand-in jailer${skip ? ` (${skip})` : ""}`, () => {
  it("builds the chroot, drops to the uid and gid and execs the copy in its own process", async () => {
    const run = await jailer([...required("srv-0000aa01"), "--", "--api-sock", "/run/firecracker.socket"]);
    expect(run).toMatchObject({ code: 0, stderr: "" });
    const chroot = join(base, "firecracker", "srv-0000aa01", "root");
    const [who = "", rest = ""] = run.stdout.split(/\n(.*)/s);
    expect(who).toBe(`${run.pid} ${UID} ${UID + 1} ${UID + 1} ${chroot}`);
    const [args = "", env = ""] = rest.split("---\n");
    expect(args.trim().split("\n")).toEqual([
      "--id",
      "srv-0000aa01",
      "--start-time-us",
      expect.stringMatching(/^\d+$/),
      "--start-time-cpu-us",
      expect.stringMatching(/^\d+$/),
      "--parent-cpu-time-us",
      expect.stringMatching(/^\d+$/),
      "--api-sock",
      "/run/firecracker.socket",
    ]);
    // The environment is cleared: only what stands in for the chroot reaches Firecracker.
    expect(env).toContain(`FAKE_FIRECRACKER_ROOT=${chroot}\n`);
    expect(env).not.toContain("LEAKED_TO_FIRECRACKER");

    expect(await readFile(join(chroot, "firecracker.pid"), "utf8")).toBe(String(run.pid));
    const copy = await stat(join(chroot, "firecracker"));
    expect([copy.uid, copy.gid, copy.mode & 0o777]).toEqual([UID, UID + 1, 0o755]);
    expect(copy.ino).not.toBe((await stat(execFile)).ino);
    for (const folder of ["", "dev", "dev/net", "run"]) {
      const made = await stat(join(chroot, folder));
      expect([folder, made.uid, made.gid, made.mode & 0o777]).toEqual([folder, UID, UID + 1, 0o700]);
    }
  });

  it.each([
    [
      ["--id", "srv-1", "--exec-file", "/bin/true"],
      "Failed to parse arguments: Argument 'uid' required, but not found.",
    ],
    [
      ["--id=srv-1", "--exec-file", "/bin/true", "--uid", "1", "--gid", "1"],
      "Failed to parse arguments: Found argument 'id=srv-1' which wasn't expected, or isn't valid in this context.",
    ],
    [
      [...required("srv-1"), "--uid", "2"],
      "Failed to parse arguments: The argument 'uid' was provided more than once.",
    ],
    [required("srv_0000aa01"), "Invalid instance ID: Invalid char (_) at position 3"],
    [required("a".repeat(65)), "Invalid instance ID: Invalid len (65);  the length must be between 1 and 64"],
    [
      ["--id", "srv-1", "--exec-file", "/no/firecracker", "--uid", "1", "--gid", "1"],
      "Failed to canonicalize path /no/firecracker: No such file or directory (os error 2)",
    ],
    [
      [...required("srv-1").slice(0, -1), "/no/jail"],
      "Failed to canonicalize path /no/jail: No such file or directory (os error 2)",
    ],
    [required("srv-1").map((arg) => (arg === String(UID) ? "-1" : arg)), "Invalid uid: -1"],
  ])("refuses %j as the jailer does", async (args, message) => {
    const run = await jailer(args);
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 1, stderr: `${message}\n` });
  });

  it("refuses a jail an earlier run left, and options it cannot honour", async () => {
    expect((await jailer(required("srv-0000aa02"))).code).toBe(0);
    expect(await jailer(required("srv-0000aa02"))).toMatchObject({
      code: 1,
      stderr: "Failed to open file /firecracker.pid: File exists (os error 17)\n",
    });
    expect(await jailer([...required("srv-0000aa03"), "--daemonize"])).toMatchObject({
      code: 1,
      stderr: "fake jailer: --daemonize is not emulated\n",
    });
  });
});
