import { describe, expect, it } from "vitest";
import {
  AllocateIp,
  CreatePool,
  CreateVm,
  ListAudit,
  PoolName,
  parse,
  Text,
  UpdatePool,
  UpdateVm,
  ValidationFailed,
  VmCreated,
} from "../src/index.ts";

const NUL = "\u0000";
const LONE_SURROGATE = "\ud800";
const actor = { userId: 7, userName: "alice", superuser: false };
const create = { vmId: "srv-0a1b2c3d", actor, name: "web-1" };
const pool = {
  poolId: "pool-0a1b2c3d",
  name: "lab",
  cidr: "10.0.0.0/24",
  gateway: "10.0.0.1",
  rangeStart: "10.0.0.10",
  rangeEnd: "10.0.0.200",
};

function refusal(run: () => unknown): ValidationFailed {
  try {
    run();
  } catch (error) {
    if (error instanceof ValidationFailed) return error;
    throw error;
  }
  throw new Error("accepted");
}

describe("text that reaches PostgreSQL", () => {
  it("is any well-formed string without NUL: PostgreSQL stores neither NUL nor a lone surrogate", () => {
    expect(Text.parse("a description — with ünïcode and 🚀")).toBe("a description — with ünïcode and 🚀");
    expect(Text.safeParse(`a${NUL}b`).error?.issues[0]?.message).toMatch(/NUL/);
    expect(Text.safeParse(`a${LONE_SURROGATE}b`).error?.issues[0]?.message).toMatch(/surrogate/);
    // Limits still chain after the shared rule.
    expect(Text.max(3).safeParse(`ab${NUL}`).success).toBe(false);
    expect(Text.max(3).safeParse("abcd").success).toBe(false);
  });

  it.each([
    ["CreateVm description", () => parse(CreateVm, { ...create, description: `x${NUL}` })],
    ["UpdateVm description", () => parse(UpdateVm, { vmId: create.vmId, actor, description: NUL })],
    [
      "VmCreated description",
      () =>
        parse(VmCreated, {
          vmId: create.vmId,
          userId: 7,
          name: "web-1",
          description: LONE_SURROGATE,
          vcpuCount: 1,
          memoryMb: 512,
        }),
    ],
    ["the actor's name", () => parse(CreateVm, { ...create, actor: { ...actor, userName: `al${NUL}ice` } })],
    ["CreatePool description", () => parse(CreatePool, { ...pool, description: `lab${NUL}` })],
    ["CreatePool cidr", () => parse(CreatePool, { ...pool, cidr: `10.0.0.0/2${NUL}` })],
    ["UpdatePool description", () => parse(UpdatePool, { poolId: pool.poolId, description: NUL })],
    ["ListAudit vmId", () => parse(ListAudit, { vmId: `srv-${NUL}` })],
    ["ListAudit type", () => parse(ListAudit, { type: `Vm${LONE_SURROGATE}` })],
  ])("%s with a NUL or a lone surrogate is refused by its contract", (_, run) => {
    expect(refusal(run).message).toMatch(/NUL|surrogate/);
  });

  it("a VM's pool follows the pool name rule ippool-service allocates by", () => {
    for (const name of ["default", "lab_2", "edge-1"]) {
      expect(parse(CreateVm, { ...create, pool: name }).pool).toBe(name);
      expect(parse(AllocateIp, { vmId: create.vmId, pool: name }).pool).toBe(name);
    }
    for (const name of ["my pool", "lab.2", "-lead", `lab${NUL}`, "x".repeat(65)]) {
      expect(PoolName.safeParse(name).success, name).toBe(false);
      expect(() => parse(CreateVm, { ...create, pool: name }), name).toThrow(ValidationFailed);
    }
  });
});
