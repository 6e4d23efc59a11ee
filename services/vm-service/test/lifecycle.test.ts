import { isRefusal, type Refusal } from "@mikrom/eventstore/decider";
import { describe, expect, it } from "vitest";
import type { HostLoad } from "../src/domain/hosts.ts";
import {
  type AllocationAnswer,
  type ProcessInput,
  type ReactContext,
  react,
} from "../src/domain/lifecycle.ts";
import { type Decision, outstanding, plan } from "../src/domain/outgoing.ts";
import {
  evolve,
  type Lifecycle,
  outstandingAllocation,
  replay,
  type Step,
  stepCommandId,
  stepOf,
  transitions,
  type Vm,
  type VmEvent,
} from "../src/domain/vm.ts";
import { commands, HOST, histories, IP, VM_ID, vmIn } from "./fixtures.ts";

const NOW = 1_000_000;
const liveHost = (hostId: string, used = 0): HostLoad => ({
  hostId,
  driver: "fake",
  vcpus: 8,
  memoryMb: 8192,
  status: "up",
  lastSeenMs: NOW - 1000,
  unreachableSinceMs: null,
  usedVcpus: used,
  usedMemoryMb: used * 512,
});
const ctx: ReactContext = { hosts: [liveHost(HOST)], nowMs: NOW, heartbeatTimeoutMs: 15_000 };
const noHosts: ReactContext = { ...ctx, hosts: [] };

const ipAllocated: AllocationAnswer = {
  type: "IpAllocated",
  data: {
    vmId: VM_ID,
    poolId: "pool-0000aaaa",
    pool: "default",
    address: IP,
    prefixLength: 24,
    gateway: "10.0.0.1",
  },
};
const allocationFailed: AllocationAnswer = {
  type: "IpAllocationFailed",
  data: { vmId: VM_ID, pool: "default", reason: "exhausted" },
};
const booted = (hostId = HOST): ProcessInput => ({
  type: "VmBooted",
  data: { vmId: VM_ID, hostId, driver: "fake", bootMs: 12 },
});
const bootFailed: ProcessInput = {
  type: "VmBootFailed",
  data: { vmId: VM_ID, hostId: HOST, step: "kernel", reason: "no kernel" },
};
const shutDown: ProcessInput = { type: "VmShutDown", data: { vmId: VM_ID, hostId: HOST } };
const shutdownFailed: ProcessInput = {
  type: "VmShutdownFailed",
  data: { vmId: VM_ID, hostId: HOST, reason: "stuck" },
};
const destroyed: ProcessInput = { type: "VmDestroyed", data: { vmId: VM_ID, hostId: HOST } };
const lost: ProcessInput = { type: "VmLost", data: { vmId: VM_ID, hostId: HOST, reason: "process exited" } };
const hostLost: ProcessInput = {
  type: "HostLost",
  data: { hostId: HOST, reason: "no heartbeat from host-a for 15000 ms" },
};
const deadline = (step: Step): ProcessInput => ({
  type: "DeadlineReached",
  data: { step, timeoutMs: 500 },
});

function summary(d: Decision): { events: string[]; sends: string[]; deadline: string | null | undefined } {
  return {
    events: d.events.map((e) => (e.type === "VmFailed" ? `VmFailed(${e.data.errorMessage})` : e.type)),
    sends: d.commands.map((o) => `${o.service === "ippool" ? "ippool" : o.hostId}:${o.command.type}`),
    deadline: d.deadline,
  };
}

const hostAvailable: ProcessInput = { type: "HostAvailable", data: { hostId: HOST } };
const awaitingHost: VmEvent = {
  type: "VmAwaitingHost",
  data: { vmId: VM_ID, ipAddress: IP, prefixLength: 24, gateway: "10.0.0.1" },
};
/** A VM holding its address and waiting for a host: on create (pending) or on a start after an error. */
const waitingPending = replay([awaitingHost], vmIn("pending"));
const waitingStarting = replay(
  [{ type: "VmStartRequested", data: { vmId: VM_ID } }, awaitingHost],
  vmIn("error"),
);
const fullHost: ReactContext = { ...ctx, hosts: [liveHost(HOST, 8)] };
const silentHost: ReactContext = { ...ctx, hosts: [{ ...liveHost(HOST), lastSeenMs: NOW - 60_000 }] };

/** A VM that failed after its first address and was started again: its second AllocateIp is out. */
const restartedFromError = replay([{ type: "VmStartRequested", data: { vmId: VM_ID } }], vmIn("error"));
const firstRequest = outstandingAllocation(vmIn("pending"))!;
const secondRequest = outstandingAllocation(restartedFromError)!;
const answering = (input: AllocationAnswer, causationId: string): ProcessInput => ({ ...input, causationId });
/** The restarted VM once the answer to its second request placed it. */
const placedAfterRestart = replay(
  react(answering(ipAllocated, secondRequest), restartedFromError, ctx).events,
  restartedFromError,
);

const release = "ippool:ReleaseIp";
const destroy = "host-a:DestroyVm";
const nothing = { events: [], sends: [], deadline: undefined };
const nothing_: Decision = { events: [], commands: [], deadline: undefined };

const cases: Array<[string, Lifecycle | Vm, ProcessInput, ReactContext, ReturnType<typeof summary>]> = [
  [
    "an address for a pending VM places it on a live host and boots it",
    "pending",
    ipAllocated,
    ctx,
    { events: ["VmProvisioning"], sends: ["host-a:BootVm"], deadline: "boot" },
  ],
  [
    "an address with no live host is kept while the VM waits for one",
    "pending",
    ipAllocated,
    noHosts,
    { events: ["VmAwaitingHost"], sends: [], deadline: "schedule" },
  ],
  [
    "an address with only a full host is kept while the VM waits for room",
    "pending",
    ipAllocated,
    fullHost,
    { events: ["VmAwaitingHost"], sends: [], deadline: "schedule" },
  ],
  [
    "an address for a failed VM being started again waits for a host too",
    replay([{ type: "VmStartRequested", data: { vmId: VM_ID } }], vmIn("error")),
    ipAllocated,
    noHosts,
    { events: ["VmAwaitingHost"], sends: [], deadline: "schedule" },
  ],
  [
    "a host with room places a waiting VM and boots it",
    waitingPending,
    hostAvailable,
    ctx,
    { events: ["VmProvisioning"], sends: ["host-a:BootVm"], deadline: "boot" },
  ],
  [
    "a host with room places a VM waiting after a start",
    waitingStarting,
    hostAvailable,
    ctx,
    { events: ["VmProvisioning"], sends: ["host-a:BootVm"], deadline: "boot" },
  ],
  ["a host without room leaves a waiting VM waiting", waitingPending, hostAvailable, fullHost, nothing],
  ["a silent host leaves a waiting VM waiting", waitingPending, hostAvailable, silentHost, nothing],
  ["a host changes nothing for a VM not waiting on one", "provisioning", hostAvailable, ctx, nothing],
  ["a host changes nothing for a VM still waiting on its address", "pending", hostAvailable, ctx, nothing],
  [
    "no host by the schedule deadline fails the VM naming the step and releases the address",
    waitingPending,
    deadline("schedule"),
    noHosts,
    {
      events: ["VmFailed(schedule timed out: no host for the VM within 500 ms: no live provisioner host)"],
      sends: [release],
      deadline: null,
    },
  ],
  [
    "no room by the schedule deadline names what was missing",
    waitingPending,
    deadline("schedule"),
    fullHost,
    {
      events: [
        "VmFailed(schedule timed out: no host for the VM within 500 ms: no live host with room for 2 vCPU and 1024 MB (1 live))",
      ],
      sends: [release],
      deadline: null,
    },
  ],
  [
    "room found at the schedule deadline still places the VM",
    waitingPending,
    deadline("schedule"),
    ctx,
    { events: ["VmProvisioning"], sends: ["host-a:BootVm"], deadline: "boot" },
  ],
  ["a schedule deadline of a placed VM is stale", "provisioning", deadline("schedule"), ctx, nothing],
  [
    "a failed allocation fails the VM",
    "pending",
    allocationFailed,
    ctx,
    {
      events: ["VmFailed(IP allocation failed: exhausted (pool default))"],
      sends: [release],
      deadline: null,
    },
  ],
  [
    "a boot makes a provisioning VM running",
    "provisioning",
    booted(),
    ctx,
    { events: ["VmRunning"], sends: [], deadline: null },
  ],
  [
    "a failed boot fails the VM and gives back address and host",
    "provisioning",
    bootFailed,
    ctx,
    {
      events: ["VmFailed(boot failed on host host-a at kernel: no kernel)"],
      sends: [release, destroy],
      deadline: null,
    },
  ],
  [
    "a silent provisioner past the boot deadline fails the VM naming the step",
    "provisioning",
    deadline("boot"),
    ctx,
    {
      events: ["VmFailed(boot timed out: no answer from provisioner host host-a within 500 ms)"],
      sends: [release, destroy],
      deadline: null,
    },
  ],
  [
    "a silent IP pool past the allocation deadline fails the VM and releases what may still come",
    "pending",
    deadline("allocate"),
    ctx,
    {
      events: ["VmFailed(allocate timed out: no answer from the IP pool service within 500 ms)"],
      sends: [release],
      deadline: null,
    },
  ],
  ["a deadline of a step already answered changes nothing", "running", deadline("boot"), ctx, nothing],
  ["a late address for a failed VM is released", "error", ipAllocated, ctx, { ...nothing, sends: [release] }],
  [
    "a late address for a deleted VM is released",
    "deleted",
    ipAllocated,
    ctx,
    { ...nothing, sends: [release] },
  ],
  ["a duplicate address for a provisioning VM changes nothing", "provisioning", ipAllocated, ctx, nothing],
  ["a late boot of a deleted VM is destroyed", "deleted", booted(), ctx, { ...nothing, sends: [destroy] }],
  ["a duplicate boot of a running VM changes nothing", "running", booted(), ctx, nothing],
  [
    "a boot on a host the VM is not placed on is destroyed there",
    "running",
    booted("host-b"),
    ctx,
    { ...nothing, sends: ["host-b:DestroyVm"] },
  ],
  [
    "a resumed VM is running",
    "starting",
    booted(),
    ctx,
    { events: ["VmRunning"], sends: [], deadline: null },
  ],
  [
    "a rebooted VM is running",
    "restarting",
    booted(),
    ctx,
    { events: ["VmRunning"], sends: [], deadline: null },
  ],
  [
    "a shut down VM is stopped",
    "stopping",
    shutDown,
    ctx,
    { events: ["VmStopped"], sends: [], deadline: null },
  ],
  [
    "a failed shutdown fails the VM and gives everything back",
    "stopping",
    shutdownFailed,
    ctx,
    { events: ["VmFailed(stop failed on host host-a: stuck)"], sends: [release, destroy], deadline: null },
  ],
  [
    "a destroyed VM is deleted and its address released",
    "deleting",
    destroyed,
    ctx,
    { events: ["VmDeleted"], sends: [release], deadline: null },
  ],
  [
    "a VM on a lost host fails with host lost",
    "running",
    hostLost,
    ctx,
    {
      events: ["VmFailed(host lost: no heartbeat from host-a for 15000 ms)"],
      sends: [release, destroy],
      deadline: null,
    },
  ],
  [
    "a stopped VM on a lost host fails with host lost",
    "stopped",
    hostLost,
    ctx,
    {
      events: ["VmFailed(host lost: no heartbeat from host-a for 15000 ms)"],
      sends: [release, destroy],
      deadline: null,
    },
  ],
  [
    "a VM being deleted on a lost host is deleted",
    "deleting",
    hostLost,
    ctx,
    { events: ["VmDeleted"], sends: [release], deadline: null },
  ],
  [
    "a VM whose process is lost fails",
    "running",
    lost,
    ctx,
    {
      events: ["VmFailed(VM lost on host host-a: process exited)"],
      sends: [release, destroy],
      deadline: null,
    },
  ],
  ["a stopped VM has no process to lose", "stopped", lost, ctx, nothing],
  ["a failed VM is not failed again by its host", "error", hostLost, ctx, nothing],
  ["news of a VM this service never created changes nothing", "absent", booted(), ctx, nothing],
  [
    "the answer to the AllocateIp out now places a VM started again after an error",
    restartedFromError,
    answering(ipAllocated, secondRequest),
    ctx,
    { events: ["VmProvisioning"], sends: ["host-a:BootVm"], deadline: "boot" },
  ],
  [
    // Release is by VM id and the pool answers the newer request with the one address the VM holds.
    "a stale address from before the error is neither taken nor released while the new request is out",
    restartedFromError,
    answering(ipAllocated, firstRequest),
    ctx,
    nothing,
  ],
  [
    "a stale address arriving while the VM is still failed is released",
    "error",
    answering(ipAllocated, firstRequest),
    ctx,
    { ...nothing, sends: [release] },
  ],
  [
    "a stale address arriving once the new one placed the VM changes nothing",
    placedAfterRestart,
    answering(ipAllocated, firstRequest),
    ctx,
    nothing,
  ],
  [
    "a stale allocation failure does not fail a VM whose new request is out",
    restartedFromError,
    answering(allocationFailed, firstRequest),
    ctx,
    nothing,
  ],
  [
    "the failure of the AllocateIp out now fails the VM",
    restartedFromError,
    answering(allocationFailed, secondRequest),
    ctx,
    {
      events: ["VmFailed(IP allocation failed: exhausted (pool default))"],
      sends: [release],
      deadline: null,
    },
  ],
];

describe("the lifecycle process", () => {
  it.each(cases)("%s", (_name, status, input, c, expected) => {
    const vm = typeof status === "string" ? vmIn(status) : status;
    const d = react(input, vm, c);
    expect(summary(d)).toEqual(expected);
    let state = vm;
    for (const e of d.events) {
      expect(transitions[e.type].from).toContain(state.status);
      state = evolve(state, e);
    }
  });

  it("sends each AllocateIp under the id the VM then waits on, a new one for every attempt", () => {
    const idsSent = (d: Decision): Array<string | undefined> =>
      d.commands.flatMap((o) =>
        o.service === "ippool" && o.command.type === "AllocateIp" ? [o.messageId] : [],
      );
    const created = plan(commands.CreateVm(), vmIn("absent"), { userVmCount: 0, maxVmsPerUser: 10 });
    const started = plan(commands.StartVm(), vmIn("error"), { userVmCount: 1, maxVmsPerUser: 10 });
    if (isRefusal(created) || isRefusal(started)) throw new Error("refused");
    expect(idsSent(created)).toEqual([outstandingAllocation(replay(created.events, vmIn("absent")))]);
    expect(idsSent(started)).toEqual([outstandingAllocation(replay(started.events, vmIn("error")))]);
    expect(idsSent(created)).toEqual([firstRequest]);
    expect(idsSent(started)).toEqual([secondRequest]);
    expect(secondRequest).not.toBe(firstRequest);
    // The outbox keeps message ids as UUIDs.
    expect(secondRequest).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it("boots with the VM's size and the lease from the IP pool", () => {
    const pending = vmIn("pending");
    const d = react(ipAllocated, pending, ctx);
    expect(d.commands).toEqual([
      {
        service: "provisioner",
        hostId: HOST,
        // Named after the event that starts the boot: sent again, it is the same message.
        messageId: stepCommandId(VM_ID, pending.version + 1, "boot"),
        command: {
          type: "BootVm",
          data: {
            vmId: VM_ID,
            vcpuCount: 2,
            memoryMb: 1024,
            ipAddress: IP,
            prefixLength: 24,
            gateway: "10.0.0.1",
          },
        },
      },
    ]);
  });

  it("drives a create to running and a failed VM back to running through a fresh provisioning", () => {
    let vm = vmIn("absent");
    const apply = (d: Decision | Refusal): void => {
      if (isRefusal(d)) throw new Error("refused");
      for (const e of d.events) vm = evolve(vm, e);
    };
    apply(plan(commands.CreateVm(), vm, { userVmCount: 0, maxVmsPerUser: 10 }));
    apply(react(ipAllocated, vm, ctx));
    apply(react(booted(), vm, ctx));
    expect(vm).toMatchObject({ status: "running", ipAddress: IP, hostId: HOST, errorMessage: null });
    apply(react(lost, vm, ctx));
    expect(vm).toMatchObject({ status: "error", ipAddress: null, hostId: null });
    apply(plan(commands.StartVm(), vm, { userVmCount: 1, maxVmsPerUser: 10 }));
    expect(stepOf(vm)).toBe("allocate");
    apply(react(ipAllocated, vm, ctx));
    expect(vm.status).toBe("provisioning");
    apply(react(booted(), vm, ctx));
    expect(vm).toMatchObject({ status: "running", errorMessage: null });
  });

  it("boots a VM that waited for a host with the lease it kept", () => {
    const d = react(hostAvailable, waitingPending, ctx);
    expect(d.commands.map((o) => o.command)).toEqual([
      {
        type: "BootVm",
        data: {
          vmId: VM_ID,
          vcpuCount: 2,
          memoryMb: 1024,
          ipAddress: IP,
          prefixLength: 24,
          gateway: "10.0.0.1",
        },
      },
    ]);
    expect(replay(d.events, waitingPending)).toMatchObject({
      status: "provisioning",
      hostId: HOST,
      lease: { prefixLength: 24, gateway: "10.0.0.1" },
    });
  });

  it("keeps the address of a VM waiting for a host, and names the wait as the schedule step", () => {
    expect(waitingPending).toMatchObject({
      status: "pending",
      ipAddress: IP,
      hostId: null,
      allocating: false,
    });
    expect(stepOf(waitingPending)).toBe("schedule");
    expect(stepOf(waitingStarting)).toBe("schedule");
  });

  it("deletes a VM waiting for a host at once and releases its address", () => {
    const d = plan(commands.DeleteVm(), waitingPending, { userVmCount: 1, maxVmsPerUser: 10 });
    if (isRefusal(d)) throw new Error("refused");
    expect(summary(d)).toEqual({
      events: ["VmDeleteRequested", "VmDeleted"],
      sends: [release],
      deadline: null,
    });
  });

  it("names the step each in-flight status waits on", () => {
    const steps = Object.fromEntries(Object.keys(histories).map((s) => [s, stepOf(vmIn(s as Lifecycle))]));
    expect(steps).toEqual({
      absent: null,
      pending: "allocate",
      provisioning: "boot",
      starting: "start",
      running: null,
      stopping: "stop",
      stopped: null,
      restarting: "restart",
      error: null,
      deleting: "delete",
      deleted: null,
    });
  });

  it("sends a late step's command again as the same message, and nothing for a settled VM", () => {
    for (const status of [
      "pending",
      "provisioning",
      "starting",
      "stopping",
      "restarting",
      "deleting",
    ] as const) {
      const vm = vmIn(status);
      const step = stepOf(vm)!;
      const again = react({ type: "ResendDue", data: { step, attempt: 3 } }, vm, ctx);
      expect(again.events).toEqual([]);
      expect(again.deadline).toBeUndefined();
      // The very commands (ids included) the step started with, marked sent again.
      expect(again.commands).toEqual(outstanding(vm).map((c) => ({ ...c, resend: 3 })));
      expect(again.commands).toHaveLength(1);
      expect(again.commands[0]?.messageId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8000-8000-[0-9a-f]{12}$/);
    }
    expect(react({ type: "ResendDue", data: { step: "boot", attempt: 1 } }, vmIn("running"), ctx)).toEqual(
      nothing_,
    );
    // A resend of a step already answered is stale.
    expect(react({ type: "ResendDue", data: { step: "boot", attempt: 1 } }, vmIn("stopping"), ctx)).toEqual(
      nothing_,
    );
  });

  it("a step sends the same command when it starts as when it is late", () => {
    const created = plan(commands.CreateVm(), vmIn("absent"), { userVmCount: 0, maxVmsPerUser: 10 });
    if (isRefusal(created)) throw new Error("refused");
    let vm = replay(created.events, vmIn("absent"));
    expect(created.commands).toEqual(outstanding(vm));
    const placed = react(ipAllocated, vm, ctx);
    vm = replay(placed.events, vm);
    expect(placed.commands).toEqual(outstanding(vm));
    // Another event meanwhile (a rename) changes nothing about the command in flight.
    const renamed = evolve(vm, { type: "VmUpdated", data: { vmId: VM_ID, name: "renamed" } });
    expect(outstanding(renamed)).toEqual(placed.commands);
  });

  it("a deadline of a step on an unreachable host waits for the host instead of failing the VM", () => {
    const unreachable: ReactContext = {
      ...ctx,
      hosts: [{ ...liveHost(HOST), status: "unreachable", unreachableSinceMs: NOW - 1 }],
    };
    const otherUnreachable: ReactContext = {
      ...ctx,
      hosts: [liveHost(HOST), { ...liveHost("host-b"), status: "unreachable", unreachableSinceMs: NOW }],
    };
    for (const status of ["provisioning", "stopping", "restarting", "deleting"] as const) {
      const vm = vmIn(status);
      expect(react(deadline(stepOf(vm)!), vm, unreachable)).toEqual({ ...nothing_, deadline: stepOf(vm) });
      // Another host being unreachable is no reason to wait.
      expect(react(deadline(stepOf(vm)!), vm, otherUnreachable).events.map((e) => e.type)).toEqual([
        "VmFailed",
      ]);
    }
  });

  it("a deadline whose receiver has not taken its commands yet (down, or behind) waits instead of failing the VM", () => {
    const behind = (step: Step): ProcessInput => ({
      type: "DeadlineReached",
      data: { step, timeoutMs: 500, receiverBehind: true },
    });
    const vm = vmIn("pending");
    expect(react(behind("allocate"), vm, ctx)).toEqual({ ...nothing_, deadline: "allocate" });
    // Still stale when the step was answered meanwhile.
    expect(react(behind("allocate"), vmIn("provisioning"), ctx)).toEqual({
      ...nothing_,
      deadline: undefined,
    });
    // Once the receiver has taken its queue, the same deadline fails the VM.
    expect(react(deadline("allocate"), vm, ctx).events.map((e) => e.type)).toEqual(["VmFailed"]);
  });

  it("every step it starts has a deadline that fails the VM when it passes", () => {
    for (const status of [
      "pending",
      "provisioning",
      "starting",
      "stopping",
      "restarting",
      "deleting",
    ] as const) {
      const vm = vmIn(status);
      const d = react(deadline(stepOf(vm)!), vm, ctx);
      expect(d.events.map((e) => e.type)).toEqual(["VmFailed"]);
      expect(replay(d.events, vm).status).toBe("error");
    }
  });
});
