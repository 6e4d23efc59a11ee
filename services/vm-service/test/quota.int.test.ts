import { CreateVm, Header } from "@mikrom/contracts";
import { describe, expect, test } from "@mikrom/testkit";
import { OWNER, testConfig, vmIdOf, World, withService } from "./harness.ts";

const create = (w: World, n: number, vcpuCount: number, memoryMb: number, quota?: object) =>
  w.command("create", CreateVm, {
    vmId: vmIdOf(n),
    actor: OWNER,
    name: `vm-${n}`,
    description: null,
    vcpuCount,
    memoryMb,
    ...(quota && { quota }),
  });

describe("per-user vCPU and memory quotas", () => {
  test("concurrent creates never take a user past their vCPU quota", async ({ db, nats }) => {
    const w = new World(nats);
    await withService(testConfig(db, nats, { MAX_VCPUS_PER_USER: "4" }), async () => {
      // Eight creates of 2 vCPUs at once: the user's lock counts them one after another.
      const answers = await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map((i) => create(w, 0x40 + i, 2, 256)));
      const types = answers.map((a) => a.headers?.get(Header.Type));
      expect(types.filter((t) => t === "VmCreated")).toHaveLength(2);
      const refused = answers.filter((a) => a.headers?.get(Header.Type) === "CommandRejected");
      expect(refused).toHaveLength(6);
      for (const r of refused)
        expect(r.json()).toMatchObject({ code: "limit", reason: expect.stringMatching(/vCPU quota/) });
    });
  });

  test("the memory total is held too, and a quota in the command overrides the service's default", async ({
    db,
    nats,
  }) => {
    const w = new World(nats);
    await withService(testConfig(db, nats, { MAX_MEMORY_MB_PER_USER: "1024" }), async () => {
      expect((await create(w, 0x50, 1, 1024)).headers?.get(Header.Type)).toBe("VmCreated");
      const over = await create(w, 0x51, 1, 128);
      expect(over.json()).toMatchObject({ code: "limit", reason: expect.stringMatching(/memory quota/) });
      // A superuser raised this user's memory quota (the gateway sends it with each create).
      expect((await create(w, 0x52, 1, 128, { memoryMb: 2048 })).headers?.get(Header.Type)).toBe("VmCreated");
      // And lowered their VM count: two held, one allowed.
      const fewer = await create(w, 0x53, 1, 128, { vms: 1, memoryMb: 4096 });
      expect(fewer.json()).toMatchObject({
        code: "limit",
        reason: "VM limit reached: at most 1 VMs per user",
      });
    });
  });
});
