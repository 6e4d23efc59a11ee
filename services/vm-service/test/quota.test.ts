import { describe, expect, it } from "vitest";
import { type DecideContext, decide } from "../src/domain/decide.ts";
import { commands, vmIn } from "./fixtures.ts";

// The fixture's create asks for 2 vCPUs and 1024 MB.
const base: DecideContext = { userVmCount: 0, maxVmsPerUser: 10 };
const limited = (held: { vcpus: number; memoryMb: number }): DecideContext => ({
  ...base,
  userVcpus: held.vcpus,
  maxVcpusPerUser: 8,
  userMemoryMb: held.memoryMb,
  maxMemoryMbPerUser: 4096,
});

describe("vCPU and memory quotas on create", () => {
  it.each([
    ["fits exactly", { vcpus: 6, memoryMb: 3072 }, undefined],
    [
      "one vCPU too many",
      { vcpus: 7, memoryMb: 0 },
      "vCPU quota reached: your VMs hold 7 of 8 vCPUs and this one asks for 2",
    ],
    [
      "one MB too many",
      { vcpus: 0, memoryMb: 3073 },
      "memory quota reached: your VMs hold 3073 of 4096 MB and this one asks for 1024 MB",
    ],
  ])("%s", (_what, held, reason) => {
    const decision = decide(commands.CreateVm(), vmIn("absent"), limited(held));
    if (reason === undefined) expect(decision).toMatchObject([{ type: "VmCreated" }]);
    else expect(decision).toMatchObject({ code: "limit", reason });
  });

  it("a zero quota refuses every create; no quota given is no vCPU or memory limit", () => {
    expect(decide(commands.CreateVm(), vmIn("absent"), { ...base, maxVcpusPerUser: 0 })).toMatchObject({
      code: "limit",
    });
    expect(decide(commands.CreateVm(), vmIn("absent"), { ...base, userVcpus: 1_000 })).toMatchObject([
      { type: "VmCreated" },
    ]);
  });
});
