import { isRefusal, type RefusalCode } from "@mikrom/eventstore/decider";
import { describe, expect, it } from "vitest";
import { type DecideContext, decide, type VmCommandType } from "../src/domain/decide.ts";
import { type Decision, type Outgoing, plan } from "../src/domain/outgoing.ts";
import { evolve, type Lifecycle, transitions, type VmEvent } from "../src/domain/vm.ts";
import { ADMIN, commands, OWNER, STRANGER, VM_ID, vmIn } from "./fixtures.ts";

const ctx: DecideContext = { userVmCount: 0, maxVmsPerUser: 10 };

type Expected =
  | { events: VmEvent["type"][]; sends: string[]; deadline: string | null | undefined }
  | { refused: RefusalCode; reason: string };

const ok = (events: VmEvent["type"][], sends: string[], deadline: string | null | undefined): Expected => ({
  events,
  sends,
  deadline,
});
const no = (code: RefusalCode, reason: string): Expected => ({ refused: code, reason });
const notFound = no("not_found", `VM ${VM_ID} not found`);
const notRunning = (s: string): Expected => no("conflict", `VM is not running (current status: ${s})`);
const cannotStart = (s: string): Expected => no("conflict", `VM cannot be started (current status: ${s})`);
const exists = no("conflict", `VM ${VM_ID} already exists`);
const updated = ok(["VmUpdated"], [], undefined);

/** Every (status, command) pair: the events and outgoing commands, or the refusal and its reason. */
const table: Record<Lifecycle, Record<VmCommandType, Expected>> = {
  absent: {
    CreateVm: ok(["VmCreated"], ["ippool:AllocateIp"], "allocate"),
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
    DeleteVm: ok(["VmDeleteRequested", "VmDeleted"], ["ippool:ReleaseIp"], null),
  },
  provisioning: {
    CreateVm: exists,
    UpdateVm: updated,
    StartVm: cannotStart("provisioning"),
    StopVm: notRunning("provisioning"),
    RestartVm: notRunning("provisioning"),
    DeleteVm: ok(["VmDeleteRequested"], ["host-a:DestroyVm"], "delete"),
  },
  starting: {
    CreateVm: exists,
    UpdateVm: updated,
    StartVm: cannotStart("starting"),
    StopVm: notRunning("starting"),
    RestartVm: notRunning("starting"),
    DeleteVm: ok(["VmDeleteRequested"], ["host-a:DestroyVm"], "delete"),
  },
  running: {
    CreateVm: exists,
    UpdateVm: updated,
    StartVm: no("conflict", "VM is already running"),
    StopVm: ok(["VmStopRequested"], ["host-a:ShutDownVm"], "stop"),
    RestartVm: ok(["VmRestartRequested"], ["host-a:RebootVm"], "restart"),
    DeleteVm: ok(["VmDeleteRequested"], ["host-a:DestroyVm"], "delete"),
  },
  stopping: {
    CreateVm: exists,
    UpdateVm: updated,
    StartVm: cannotStart("stopping"),
    StopVm: notRunning("stopping"),
    RestartVm: notRunning("stopping"),
    DeleteVm: ok(["VmDeleteRequested"], ["host-a:DestroyVm"], "delete"),
  },
  stopped: {
    CreateVm: exists,
    UpdateVm: updated,
    StartVm: ok(["VmStartRequested"], ["host-a:ResumeVm"], "start"),
    StopVm: notRunning("stopped"),
    RestartVm: notRunning("stopped"),
    DeleteVm: ok(["VmDeleteRequested"], ["host-a:DestroyVm"], "delete"),
  },
  restarting: {
    CreateVm: exists,
    UpdateVm: updated,
    StartVm: cannotStart("restarting"),
    StopVm: notRunning("restarting"),
    RestartVm: notRunning("restarting"),
    DeleteVm: ok(["VmDeleteRequested"], ["host-a:DestroyVm"], "delete"),
  },
  error: {
    CreateVm: exists,
    UpdateVm: updated,
    // A failed VM holds nothing: starting it provisions it again from the address up.
    StartVm: ok(["VmStartRequested"], ["ippool:AllocateIp"], "allocate"),
    StopVm: notRunning("error"),
    RestartVm: notRunning("error"),
    DeleteVm: ok(["VmDeleteRequested", "VmDeleted"], [], null),
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

function sendsOf(d: Decision): string[] {
  return d.commands.map((o: Outgoing) => `${o.service === "ippool" ? "ippool" : o.hostId}:${o.command.type}`);
}

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
    if (isRefusal(result)) throw new Error(`refused: ${result.reason}`);
    expect(result.events.map((e) => e.type)).toEqual(expected.events);
    expect(sendsOf(result)).toEqual(expected.sends);
    expect(result.deadline).toEqual(expected.deadline);
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

  it("sends the boot command with the lease the provisioning event carries", () => {
    const result = plan(commands.StartVm(), vmIn("stopped"), ctx);
    expect(result).toMatchObject({
      commands: [{ service: "provisioner", hostId: "host-a", command: { type: "ResumeVm" } }],
    });
  });

  it("an update that names nothing still answers with an event", () => {
    const result = decide({ type: "UpdateVm", data: { vmId: VM_ID, actor: OWNER } }, vmIn("running"), ctx);
    expect(result).toEqual([{ type: "VmUpdated", data: { vmId: VM_ID } }]);
  });
});
