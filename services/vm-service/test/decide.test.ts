import { isRefusal, type Refusal, refuse } from "@mikrom/eventstore/decider";
import { describe, expect, it } from "vitest";
import { type DecideContext, decide, type VmCommand, type VmCommandType } from "../src/domain/decide.ts";
import { allocationRequestId, type StepCommand, stepCommandId } from "../src/domain/message-ids.ts";
import { type Decision, type Outgoing, plan } from "../src/domain/outgoing.ts";
import { evolve, type Lifecycle, type Step, transitions, type VmEvent } from "../src/domain/vm.ts";
import { ADMIN, commands, HOST, histories, OWNER, STRANGER, VM_ID, vmIn } from "./fixtures.ts";

const ctx: DecideContext = { userVmCount: 0, maxVmsPerUser: 10 };

type Expected = Decision | { refused: Refusal["code"]; reason: string };

const ok = (events: VmEvent[], commands: Outgoing[], deadline: Step | null | undefined): Expected => ({
  events,
  commands,
  deadline,
});
const no = (code: Refusal["code"], reason: string): Expected => ({ refused: code, reason });
const notFound = no("not_found", `VM ${VM_ID} not found`);
const notRunning = (s: string): Expected => no("conflict", `VM is not running (current status: ${s})`);
const cannotStart = (s: string): Expected => no("conflict", `VM cannot be started (current status: ${s})`);
const exists = no("conflict", `VM ${VM_ID} already exists`);
const updated = ok([{ type: "VmUpdated", data: { vmId: VM_ID, name: "web-2" } }], [], undefined);

/** An event that carries nothing but the VM's id. */
const ev = (
  type: "VmStartRequested" | "VmStopRequested" | "VmRestartRequested" | "VmDeleteRequested" | "VmDeleted",
): VmEvent => ({ type, data: { vmId: VM_ID } }) as VmEvent;
/**
 * The command a step started from `status` sends the VM's host: named after the event that starts the
 * step (the one after the status's history), so that sending it again sends the same message.
 */
const toHost = (
  type: "ResumeVm" | "ShutDownVm" | "RebootVm" | "DestroyVm",
  kind: StepCommand,
  from: Lifecycle,
): Outgoing => ({
  service: "provisioner",
  hostId: HOST,
  command: { type, data: { vmId: VM_ID } },
  messageId: stepCommandId(VM_ID, histories[from].length + 1, kind),
});
/** The n-th AllocateIp, under the id the VM then waits on. */
const allocateIp = (n: number): Outgoing => ({
  service: "ippool",
  command: { type: "AllocateIp", data: { vmId: VM_ID } },
  messageId: allocationRequestId(VM_ID, n),
});
const releaseIp: Outgoing = { service: "ippool", command: { type: "ReleaseIp", data: { vmId: VM_ID } } };
const deleteOn = (from: Lifecycle): Expected =>
  ok([ev("VmDeleteRequested")], [toHost("DestroyVm", "destroy", from)], "delete");

/** Every (status, command) pair: the events and outgoing commands, or the refusal and its reason. */
const table: Record<Lifecycle, Record<VmCommandType, Expected>> = {
  absent: {
    CreateVm: ok(
      [
        {
          type: "VmCreated",
          data: {
            vmId: VM_ID,
            userId: OWNER.userId,
            name: "web-1",
            description: null,
            vcpuCount: 2,
            memoryMb: 1024,
          },
        },
      ],
      [allocateIp(1)],
      "allocate",
    ),
    UpdateVm: notFound,
    StartVm: notFound,
    StopVm: notFound,
    RestartVm: notFound,
    DeleteVm: notFound,
  },
  pending: {
    CreateVm: exists,
    UpdateVm: updated,
    StartVm: cannotStart("pending"),
    StopVm: notRunning("pending"),
    RestartVm: notRunning("pending"),
    // The allocation is still out: whatever it brings is released.
    DeleteVm: ok([ev("VmDeleteRequested"), ev("VmDeleted")], [releaseIp], null),
  },
  provisioning: {
    CreateVm: exists,
    UpdateVm: updated,
    StartVm: cannotStart("provisioning"),
    StopVm: notRunning("provisioning"),
    RestartVm: notRunning("provisioning"),
    DeleteVm: deleteOn("provisioning"),
  },
  starting: {
    CreateVm: exists,
    UpdateVm: updated,
    StartVm: cannotStart("starting"),
    StopVm: notRunning("starting"),
    RestartVm: notRunning("starting"),
    DeleteVm: deleteOn("starting"),
  },
  running: {
    CreateVm: exists,
    UpdateVm: updated,
    StartVm: no("conflict", "VM is already running"),
    StopVm: ok([ev("VmStopRequested")], [toHost("ShutDownVm", "shutdown", "running")], "stop"),
    RestartVm: ok([ev("VmRestartRequested")], [toHost("RebootVm", "reboot", "running")], "restart"),
    DeleteVm: deleteOn("running"),
  },
  stopping: {
    CreateVm: exists,
    UpdateVm: updated,
    StartVm: cannotStart("stopping"),
    StopVm: notRunning("stopping"),
    RestartVm: notRunning("stopping"),
    DeleteVm: deleteOn("stopping"),
  },
  stopped: {
    CreateVm: exists,
    UpdateVm: updated,
    StartVm: ok([ev("VmStartRequested")], [toHost("ResumeVm", "resume", "stopped")], "start"),
    StopVm: notRunning("stopped"),
    RestartVm: notRunning("stopped"),
    DeleteVm: deleteOn("stopped"),
  },
  restarting: {
    CreateVm: exists,
    UpdateVm: updated,
    StartVm: cannotStart("restarting"),
    StopVm: notRunning("restarting"),
    RestartVm: notRunning("restarting"),
    DeleteVm: deleteOn("restarting"),
  },
  error: {
    CreateVm: exists,
    UpdateVm: updated,
    // A failed VM holds nothing: starting it provisions it again from the address up (its second AllocateIp).
    StartVm: ok([ev("VmStartRequested")], [allocateIp(2)], "allocate"),
    StopVm: notRunning("error"),
    RestartVm: notRunning("error"),
    DeleteVm: ok([ev("VmDeleteRequested"), ev("VmDeleted")], [], null),
  },
  deleting: {
    CreateVm: exists,
    UpdateVm: no("conflict", "VM cannot be updated (current status: deleting)"),
    StartVm: cannotStart("deleting"),
    StopVm: notRunning("deleting"),
    RestartVm: notRunning("deleting"),
    DeleteVm: no("conflict", "VM is already being deleted"),
  },
  deleted: {
    CreateVm: exists,
    UpdateVm: notFound,
    StartVm: notFound,
    StopVm: notFound,
    RestartVm: notFound,
    DeleteVm: notFound,
  },
};

const pairs = Object.entries(table).flatMap(([status, row]) =>
  Object.entries(row).map(
    ([cmd, expected]) => [status as Lifecycle, cmd as VmCommandType, expected] as const,
  ),
);

describe("the VM decider", () => {
  it.each(pairs)("%s + %s", (status, cmdType, expected) => {
    const vm = vmIn(status);
    expect(vm.status).toBe(status);
    const result = plan(commands[cmdType](), vm, ctx);
    if ("refused" in expected) {
      expect(result).toEqual({ kind: "refusal", code: expected.refused, reason: expected.reason });
      return;
    }
    // Strict: a key set to undefined (a pool or a name the command never gave) is a difference too.
    expect(result).toStrictEqual(expected);
    if (isRefusal(result)) return;
    // Every event leaves from a status the transition table allows, and lands where it says.
    let state = vm;
    for (const event of result.events) {
      expect(transitions[event.type].from).toContain(state.status);
      state = evolve(state, event);
    }
  });

  it("covers every status and every command", () => {
    expect(pairs).toHaveLength(11 * 6);
  });

  it("records the creator as owner with the requested size", () => {
    const events = decide(commands.CreateVm(), vmIn("absent"), ctx);
    expect(events).toEqual([
      {
        type: "VmCreated",
        data: {
          vmId: VM_ID,
          userId: OWNER.userId,
          name: "web-1",
          description: null,
          vcpuCount: 2,
          memoryMb: 1024,
        },
      },
    ]);
  });

  it("refuses a create past the per-user limit", () => {
    expect(decide(commands.CreateVm(), vmIn("absent"), { userVmCount: 10, maxVmsPerUser: 10 })).toEqual({
      kind: "refusal",
      code: "limit",
      reason: "VM limit reached: at most 10 VMs per user",
    });
    expect(
      decide(commands.CreateVm(), vmIn("absent"), { userVmCount: 9, maxVmsPerUser: 10 }),
    ).not.toHaveProperty("kind");
  });

  it("treats another user's VM as not found", () => {
    for (const cmd of ["UpdateVm", "StartVm", "StopVm", "RestartVm", "DeleteVm"] as const)
      expect(decide(commands[cmd](STRANGER), vmIn("running"), ctx)).toMatchObject({ code: "not_found" });
  });

  it("lets a superuser act on any VM", () => {
    expect(decide(commands.StopVm(ADMIN), vmIn("running"), ctx)).toEqual([
      { type: "VmStopRequested", data: { vmId: VM_ID } },
    ]);
  });

  it("a VM never created, or deleted, is not found for a superuser either", () => {
    for (const status of ["absent", "deleted"] as const)
      expect(decide(commands.StopVm(ADMIN), vmIn(status), ctx)).toEqual({
        kind: "refusal",
        code: "not_found",
        reason: `VM ${VM_ID} not found`,
      });
  });

  it("sends the boot command with the lease the provisioning event carries", () => {
    const result = plan(commands.StartVm(), vmIn("stopped"), ctx);
    expect(result).toMatchObject({
      commands: [{ service: "provisioner", hostId: "host-a", command: { type: "ResumeVm" } }],
    });
  });

  it.each<[string, Partial<{ name: string; description: string | null }>]>([
    ["nothing", {}],
    ["a name", { name: "web-2" }],
    ["a description", { description: "db" }],
    ["a cleared description", { description: null }],
    ["both", { name: "web-2", description: "db" }],
  ])("an update that names %s answers with an event naming just that", (_, changes) => {
    const result = decide(
      { type: "UpdateVm", data: { vmId: VM_ID, actor: OWNER, ...changes } },
      vmIn("running"),
      ctx,
    );
    expect(result).toStrictEqual([{ type: "VmUpdated", data: { vmId: VM_ID, ...changes } }]);
  });

  it("records the pool a create names", () => {
    const cmd = commands.CreateVm();
    const inPool = { ...cmd, data: { ...cmd.data, pool: "gold" } } as VmCommand;
    expect(decide(inPool, vmIn("absent"), ctx)).toStrictEqual([
      {
        type: "VmCreated",
        data: {
          vmId: VM_ID,
          userId: OWNER.userId,
          name: "web-1",
          description: null,
          vcpuCount: 2,
          memoryMb: 1024,
          pool: "gold",
        },
      },
    ]);
  });

  const unreachable: DecideContext = { ...ctx, hostUnreachable: true };
  const waitForHost = (status: string): Refusal =>
    refuse(
      "conflict",
      `host ${HOST} is unreachable: the VM keeps its last known status (${status}) until the host is back; retry later`,
    );
  /** The VM's host is unreachable: what would need it is refused, the rest goes on (a delete waits for it). */
  it.each<[VmCommandType, Lifecycle, Refusal | "decided"]>([
    ["StartVm", "stopped", waitForHost("stopped")],
    ["StopVm", "running", waitForHost("running")],
    ["RestartVm", "running", waitForHost("running")],
    ["UpdateVm", "running", "decided"],
    ["DeleteVm", "running", "decided"],
    // What the status refuses anyway is refused for that reason first.
    ["StopVm", "stopped", refuse("conflict", "VM is not running (current status: stopped)")],
  ])("with its host unreachable, %s on a %s VM: %j", (cmdType, status, expected) => {
    const result = plan(commands[cmdType](), vmIn(status), unreachable);
    if (expected === "decided") expect(result).toStrictEqual(plan(commands[cmdType](), vmIn(status), ctx));
    else expect(result).toStrictEqual(expected);
  });

  it.each<[string, unknown, boolean]>([
    ["a refusal", refuse("conflict", "no"), true],
    ["events", [{ type: "VmStopRequested", data: { vmId: VM_ID } }], false],
    ["no events", [], false],
    ["null", null, false],
    ["a string", "refused", false],
    ["an object refused in name only", { kind: "refused" }, false],
  ])("tells a refusal apart: %s → %s", (_, value, expected) => {
    expect(isRefusal(value)).toBe(expected);
  });
});
