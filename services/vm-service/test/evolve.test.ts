import { describe, expect, it } from "vitest";
import { allocationRequestId, stepCommandId } from "../src/domain/message-ids.ts";
import { ippool, outstanding, provisioner } from "../src/domain/outgoing.ts";
import { initialVm, replay, type Vm, type VmEvent } from "../src/domain/vm.ts";
import { HOST, IP, OWNER, VM_ID } from "./fixtures.ts";

const created: VmEvent = {
  type: "VmCreated",
  data: { vmId: VM_ID, userId: OWNER.userId, name: "web-1", description: null, vcpuCount: 2, memoryMb: 1024 },
};
const lease = { prefixLength: 24, gateway: "10.0.0.1" };
const provisioning: VmEvent = {
  type: "VmProvisioning",
  data: { vmId: VM_ID, ipAddress: IP, hostId: HOST, ...lease },
};
const awaiting: VmEvent = { type: "VmAwaitingHost", data: { vmId: VM_ID, ipAddress: IP, ...lease } };
const running: VmEvent = { type: "VmRunning", data: { vmId: VM_ID, hostId: HOST, ipAddress: IP } };
const failed: VmEvent = {
  type: "VmFailed",
  data: { vmId: VM_ID, step: "boot", errorMessage: "boot failed" },
};
const e = (type: VmEvent["type"]): VmEvent => ({ type, data: { vmId: VM_ID } }) as VmEvent;
const updated = (data: { name?: string; description?: string | null }): VmEvent => ({
  type: "VmUpdated",
  data: { vmId: VM_ID, ...data },
});

/** The state right after VmCreated: the size asked for, an AllocateIp out, nothing held. */
const pending: Vm = {
  status: "pending",
  vmId: VM_ID,
  userId: OWNER.userId,
  name: "web-1",
  description: null,
  vcpuCount: 2,
  memoryMb: 1024,
  pool: null,
  ipAddress: null,
  hostId: null,
  allocating: true,
  allocations: 1,
  lease: null,
  errorMessage: null,
  version: 1,
  stepVersion: 1,
};
const placed: Vm = { ...pending, ipAddress: IP, hostId: HOST, allocating: false, lease };
const up: Vm = { ...placed, status: "running", version: 3, stepVersion: 2 };
/** Given back on a failure or a delete: address, host, lease, and any allocation still out. */
const holdsNothing = { ipAddress: null, hostId: null, allocating: false, lease: null } as const;

/** A history and the whole state it folds into (version: events folded; stepVersion: the event that started the step). */
const histories: Array<[string, VmEvent[], Vm]> = [
  [
    "a VM never created is absent and holds nothing",
    [],
    {
      status: "absent",
      vmId: null,
      userId: null,
      name: "",
      description: null,
      vcpuCount: 1,
      memoryMb: 512,
      pool: null,
      ipAddress: null,
      hostId: null,
      allocating: false,
      allocations: 0,
      lease: null,
      errorMessage: null,
      version: 0,
      stepVersion: 0,
    },
  ],
  ["a created VM is pending its first address", [created], pending],
  [
    "a VM created in a named pool keeps the pool",
    [{ ...created, data: { ...created.data, pool: "gold" } } as VmEvent],
    { ...pending, pool: "gold" },
  ],
  [
    "a rename keeps the description",
    [created, updated({ name: "web-2" })],
    { ...pending, name: "web-2", version: 2 },
  ],
  [
    "a description keeps the name",
    [created, updated({ description: "db" })],
    { ...pending, description: "db", version: 2 },
  ],
  [
    "a description is cleared by null",
    [created, updated({ description: "db" }), updated({ description: null })],
    { ...pending, version: 3 },
  ],
  [
    "a placed VM holds its address, its host and the lease",
    [created, provisioning],
    { ...placed, status: "provisioning", version: 2, stepVersion: 2 },
  ],
  [
    "a placement without prefix or gateway (history from before the lease) holds an empty lease",
    [created, { type: "VmProvisioning", data: { vmId: VM_ID, ipAddress: IP, hostId: HOST } }],
    { ...placed, status: "provisioning", lease: {}, version: 2, stepVersion: 2 },
  ],
  [
    "a VM waiting for a host holds its address and lease, stays pending and starts the schedule step",
    [created, awaiting],
    { ...placed, hostId: null, version: 2, stepVersion: 2 },
  ],
  [
    "a wait without prefix or gateway holds an empty lease",
    [created, { type: "VmAwaitingHost", data: { vmId: VM_ID, ipAddress: IP } }],
    { ...placed, hostId: null, lease: {}, version: 2, stepVersion: 2 },
  ],
  ["a booted VM runs on its host", [created, provisioning, running], up],
  [
    "a stop starts a step, and its end does not",
    [created, provisioning, running, e("VmStopRequested"), e("VmStopped")],
    { ...up, status: "stopped", version: 5, stepVersion: 4 },
  ],
  [
    "a start of a stopped VM resumes it where it is: no new address",
    [created, provisioning, running, e("VmStopRequested"), e("VmStopped"), e("VmStartRequested")],
    { ...up, status: "starting", version: 6, stepVersion: 6 },
  ],
  [
    "a restart keeps what the VM holds",
    [created, provisioning, running, e("VmRestartRequested")],
    { ...up, status: "restarting", version: 4, stepVersion: 4 },
  ],
  [
    "a failed VM gives everything back and keeps the error",
    [created, provisioning, failed],
    { ...placed, ...holdsNothing, status: "error", errorMessage: "boot failed", version: 3, stepVersion: 2 },
  ],
  [
    "a start of a failed VM asks for a new address (its second AllocateIp)",
    [created, provisioning, failed, e("VmStartRequested")],
    {
      ...placed,
      ...holdsNothing,
      status: "starting",
      errorMessage: "boot failed",
      allocating: true,
      allocations: 2,
      version: 4,
      stepVersion: 4,
    },
  ],
  [
    "running again clears the error",
    [created, provisioning, failed, e("VmStartRequested"), provisioning, running],
    { ...up, allocations: 2, version: 6, stepVersion: 5 },
  ],
  [
    "a delete asked starts the delete step",
    [created, provisioning, running, e("VmDeleteRequested")],
    { ...up, status: "deleting", version: 4, stepVersion: 4 },
  ],
  [
    "a deleted VM gives everything back",
    [created, provisioning, running, e("VmDeleteRequested"), e("VmDeleted")],
    { ...up, ...holdsNothing, status: "deleted", version: 5, stepVersion: 4 },
  ],
];

describe("a VM's state, event by event", () => {
  it.each(histories)("%s", (_, events, expected) => {
    expect(replay(events)).toEqual(expected);
  });

  it("a VM never created is the initial state", () => {
    expect(replay([])).toBe(initialVm);
  });

  it.each([
    [IP, "10.0.0.1"],
    ["10.0.7.254", "10.0.7.1"],
  ])(
    "boots a VM placed at %s without a lease (history from before it) on a /24 with gateway %s",
    (ip, gateway) => {
      const vm = replay([
        created,
        { type: "VmProvisioning", data: { vmId: VM_ID, ipAddress: ip, hostId: HOST } },
      ]);
      expect(outstanding(vm)).toEqual([
        {
          service: "provisioner",
          hostId: HOST,
          messageId: stepCommandId(VM_ID, 2, "boot"),
          command: {
            type: "BootVm",
            data: {
              vmId: VM_ID,
              vcpuCount: 2,
              memoryMb: 1024,
              ipAddress: ip,
              prefixLength: 24,
              gateway,
            },
          },
        },
      ]);
    },
  );

  it("asks the pool a VM was created in for its address", () => {
    const vm = replay([{ ...created, data: { ...created.data, pool: "gold" } } as VmEvent]);
    expect(outstanding(vm).map((o) => o.command)).toEqual([
      { type: "AllocateIp", data: { vmId: VM_ID, pool: "gold" } },
    ]);
  });

  /** Written out, so that a change to the layout (which the outbox and receivers' duplicate checks rely on) fails here. */
  it.each<[string, string, string]>([
    ["the first AllocateIp", allocationRequestId(VM_ID, 1), "0000abcd-a110-8000-8000-000000000001"],
    ["the 26th AllocateIp, in hex", allocationRequestId(VM_ID, 26), "0000abcd-a110-8000-8000-00000000001a"],
    ["a boot", stepCommandId(VM_ID, 2, "boot"), "0000abcd-b007-8000-8000-000000000002"],
    ["a resume", stepCommandId(VM_ID, 6, "resume"), "0000abcd-2e50-8000-8000-000000000006"],
    ["a reboot", stepCommandId(VM_ID, 4, "reboot"), "0000abcd-2eb0-8000-8000-000000000004"],
    ["a shutdown", stepCommandId(VM_ID, 4, "shutdown"), "0000abcd-5d00-8000-8000-000000000004"],
    ["a destroy", stepCommandId(VM_ID, 300, "destroy"), "0000abcd-de57-8000-8000-00000000012c"],
  ])("names %s's message after the VM, the command and the count", (_, id, expected) => {
    expect(id).toBe(expected);
  });
});

describe("what is kept of a lease", () => {
  it("keeps only what the IP pool said: no key for a prefix length or gateway it did not send", () => {
    const pending = replay([created]);
    const waiting = replay([{ type: "VmAwaitingHost", data: { vmId: VM_ID, ipAddress: IP } }], pending);
    expect(waiting.lease).toStrictEqual({});
    const placed = replay(
      [{ type: "VmProvisioning", data: { vmId: VM_ID, ipAddress: IP, hostId: HOST } }],
      pending,
    );
    expect(placed.lease).toStrictEqual({});
    const full = replay(
      [
        {
          type: "VmProvisioning",
          data: { vmId: VM_ID, ipAddress: IP, hostId: HOST, prefixLength: 24, gateway: "10.0.0.1" },
        },
      ],
      pending,
    );
    expect(full.lease).toStrictEqual({ prefixLength: 24, gateway: "10.0.0.1" });
  });
});

describe("the commands a VM sends", () => {
  it("name their receiver in full: a host's command its host, a pool's the IP pool", () => {
    const destroy = { type: "DestroyVm", data: { vmId: VM_ID } } as const;
    expect(provisioner(HOST, destroy)).toStrictEqual({
      service: "provisioner",
      hostId: HOST,
      command: destroy,
    });
    const release = { type: "ReleaseIp", data: { vmId: VM_ID } } as const;
    expect(ippool(release)).toStrictEqual({ service: "ippool", command: release });
  });
});
