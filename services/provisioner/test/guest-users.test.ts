import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { driverConfigFromEnv } from "../src/drivers/config.ts";
import { checkUnused, GuestUsers, parseUidRange } from "../src/drivers/guest-users.ts";

const dirs: string[] = [];
async function runDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "guest-users-"));
  dirs.push(dir);
  return dir;
}
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

/** A VM folder with its record, as the process driver leaves it. */
async function record(dir: string, vmId: string, guestUid?: number): Promise<void> {
  await mkdir(join(dir, vmId));
  const instance = {
    vmId,
    driver: "qemu",
    consoleLog: join(dir, vmId, "console.log"),
    runDir: join(dir, vmId),
    ipAddress: "10.0.0.2",
    prefixLength: 24,
    qmpSocket: join(dir, vmId, "qmp.sock"),
    startedAt: new Date(0).toISOString(),
    ...(guestUid !== undefined && { guestUid }),
  };
  await writeFile(join(dir, vmId, "instance.json"), JSON.stringify(instance));
}

describe("each guest's own user", () => {
  it("is the lowest uid free in the range, kept by its VM and free again once the VM is gone", async () => {
    const users = new GuestUsers({ first: 400_000, count: 3 }, await runDir());
    expect(await users.take("srv-a")).toBe(400_000);
    expect(await users.take("srv-b")).toBe(400_001);
    // Booted again (a start after a stop): the same user.
    expect(await users.take("srv-a")).toBe(400_000);
    await users.release("srv-a");
    expect(await users.take("srv-c")).toBe(400_000);
  });

  it("is never one uid for two VMs booting at once", async () => {
    const users = new GuestUsers({ first: 400_000, count: 50 }, await runDir());
    const vms = Array.from({ length: 20 }, (_, i) => `srv-${i}`);
    const uids = await Promise.all(vms.map((vm) => users.take(vm)));
    expect(new Set(uids).size).toBe(20);
    expect(Math.max(...uids)).toBe(400_019);
  });

  it("after an agent restart, knows the uids its VMs' records hold", async () => {
    const dir = await runDir();
    await record(dir, "srv-old", 400_000);
    await record(dir, "srv-nobody");
    const users = new GuestUsers({ first: 400_000, count: 3 }, dir);
    expect(await users.take("srv-new")).toBe(400_001);
    expect(await users.take("srv-old")).toBe(400_000);
  });

  it("refuses a boot when every uid is held, saying so", async () => {
    const users = new GuestUsers({ first: 400_000, count: 1 }, await runDir());
    await users.take("srv-a");
    await expect(users.take("srv-b")).rejects.toMatchObject({
      step: "prepare",
      message: expect.stringMatching(/no guest uid free: all 1 of MIKROM_GUEST_UIDS are held/),
    });
    // The queue is not stuck after a refusal.
    expect(await users.take("srv-a")).toBe(400_000);
  });

  it("comes from MIKROM_GUEST_UIDS: a range from 1000 up, or off", () => {
    expect(parseUidRange(driverConfigFromEnv({}).guestUids)).toEqual({ first: 1_900_000_000, count: 65_536 });
    expect(parseUidRange(driverConfigFromEnv({ MIKROM_GUEST_UIDS: "off" }).guestUids)).toBeUndefined();
    for (const bad of ["0-100", "5000-4000", "nobody"])
      expect(() => driverConfigFromEnv({ MIKROM_GUEST_UIDS: bad })).toThrow(/MIKROM_GUEST_UIDS/);
  });

  it("refuses a range an account, a group, a subordinate id block or useradd's own ranges use, naming it", async () => {
    const etc = await runDir();
    const range = parseUidRange(driverConfigFromEnv({}).guestUids)!;
    await writeFile(join(etc, "passwd"), "root:x:0:0::/root:/bin/sh\nada:x:1000:1000::/home/ada:/bin/sh\n");
    await writeFile(join(etc, "group"), "root:x:0:\n");
    await writeFile(join(etc, "subuid"), "ada:100000:65536\nbob:165536:65536\n");
    // The default is free of all of it, and of login.defs' defaults (no file here).
    await checkUnused(range, etc);
    // The old default: inside the subordinate ids useradd hands out (its sixth block, 427680-493215).
    const old = { first: 400_000, count: 65_536 };
    await expect(checkUnused(old, etc)).rejects.toThrow(
      /MIKROM_GUEST_UIDS 400000-465535 is in use: useradd hands out subordinate uids from 100000 to 600100000/,
    );
    // login.defs may move those ranges; what it says is what counts.
    await writeFile(join(etc, "login.defs"), "# shadow\nSUB_UID_MIN 2000000\nSUB_GID_MIN\t2000000\n");
    await checkUnused(old, etc);
    await writeFile(join(etc, "subgid"), "eve:427680:65536\n");
    await expect(checkUnused(old, etc)).rejects.toThrow(/eve's block 427680-493215 in \/etc\/subgid/);
    await writeFile(join(etc, "subgid"), "");
    await writeFile(join(etc, "passwd"), `svc:x:${range.first + 1}:1::/:/bin/false\n`);
    await expect(checkUnused(range, etc)).rejects.toThrow(
      new RegExp(`svc \\(${range.first + 1}\\) in /etc/passwd`),
    );
    // This host's own files hold nothing in the default range.
    await checkUnused(range);
  });
});
