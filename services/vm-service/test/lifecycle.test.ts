import { isRefusal, type Refusal } from "@mikrom/eventstore/decider";
import { describe, expect, it } from "vitest";
import type { AllocationAnswer, ProcessInput, ReactContext } from "../src/domain/lifecycle.ts";
import { react } from "../src/domain/lifecycle.ts";
import { outstandingAllocation, stepCommandId } from "../src/domain/message-ids.ts";
import {
  type Decision,
  ippool,
  type Outgoing,
  outstanding,
  plan,
  provisioner,
  withFollowUps,
} from "../src/domain/outgoing.ts";
import {
  evolve,
  type Lifecycle,
  replay,
  type Step,
  stepOf,
  transitions,
  type Vm,
  type VmEvent,
} from "../src/domain/vm.ts";
import {
  allocationFailed,
  awaitingHost,
  booted,
  bootFailed,
  commands,
  ctx,
  deadline,
  destroyed,
  HOST,
  histories,
  hostAvailable,
  hostLost,
  IP,
  ipAllocated,
  ipReleased,
  liveHost,
  lost,
  NOW,
  noHosts,
  restartedFromError,
  shutDown,
  shutdownFailed,
  VM_ID,
  vmIn,
  waitingPending,
  waitingStarting,
} from "./fixtures.ts";

const fullHost: ReactContext = { ...ctx, hosts: [liveHost(HOST, 8)] };
const silentHost: ReactContext = { ...ctx, hosts: [{ ...liveHost(HOST), lastSeenMs: NOW - 60_000 }] };
/** A host with vCPUs to spare but not the VM's 1024 MB (7 of its 8 vCPUs free, 768 MB). */
const shortOfMemory: ReactContext = { ...ctx, hosts: [{ ...liveHost(HOST, 1), usedMemoryMb: 8192 - 768 }] };

const firstRequest = outstandingAllocation(vmIn("pending"))!;
const secondRequest = outstandingAllocation(restartedFromError)!;
const answering = (input: AllocationAnswer, causationId: string): ProcessInput => ({ ...input, causationId });
/** The restarted VM once the answer to its second request placed it. */
const placedAfterRestart = replay(
  react(answering(ipAllocated, secondRequest), restartedFromError, ctx).events,
  restartedFromError,
);

/** What the process decides, in full: every event's data and every command's payload and message id. */
const decision = (events: VmEvent[], commands: Outgoing[], deadline: Step | null | undefined): Decision => ({
  events,
  commands,
  deadline,
});
const nothing: Decision = decision([], [], undefined);
const only = (...commands: Outgoing[]): Decision => decision([], commands, undefined);

const releaseIp = ippool({ type: "ReleaseIp", data: { vmId: VM_ID } });
const destroyOn = (hostId: string): Outgoing =>
  provisioner(hostId, { type: "DestroyVm", data: { vmId: VM_ID } });
const failedAt = (step: string, errorMessage: string): VmEvent => ({
  type: "VmFailed",
  data: { vmId: VM_ID, step, errorMessage },
});
/** A VmFailed after the VM was placed: address and host are given back with it. */
const failsPlaced = (step: string, errorMessage: string): Decision =>
  decision([failedAt(step, errorMessage)], [releaseIp, destroyOn(HOST)], null);
/** A VmFailed before the VM was placed: only the address (or the one still to come) is given back. */
const failsUnplaced = (step: string, errorMessage: string): Decision =>
  decision([failedAt(step, errorMessage)], [releaseIp], null);
const running: VmEvent = { type: "VmRunning", data: { vmId: VM_ID, hostId: HOST, ipAddress: IP } };
const runs = decision([running], [], null);
const deleted = decision([{ type: "VmDeleted", data: { vmId: VM_ID } }], [releaseIp], null);
const waits = decision([awaitingHost], [], "schedule");
/** Placed on host-a and booting with the lease, under the id of the event that starts the boot (after `vm`'s history). */
const placed = (vm: Vm): Decision =>
  decision(
    [
      {
        type: "VmProvisioning",
        data: { vmId: VM_ID, ipAddress: IP, hostId: HOST, prefixLength: 24, gateway: "10.0.0.1" },
      },
    ],
    [
      {
        service: "provisioner",
        hostId: HOST,
        messageId: stepCommandId(VM_ID, vm.version + 1, "boot"),
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
    ],
    "boot",
  );
const timedOut = (step: Step, who = "provisioner host host-a"): string =>
  `${step} timed out: no answer from ${who} within 500 ms`;

const cases: Array<[string, Lifecycle | Vm, ProcessInput, ReactContext, Decision]> = [
  [
    "an address for a pending VM places it on a live host and boots it",
    "pending",
    ipAllocated,
    ctx,
    placed(vmIn("pending")),
  ],
  ["an address with no live host is kept while the VM waits for one", "pending", ipAllocated, noHosts, waits],
  [
    "an address with only a full host is kept while the VM waits for room",
    "pending",
    ipAllocated,
    fullHost,
    waits,
  ],
  [
    "an address with only a host short of memory is kept while the VM waits for room",
    "pending",
    ipAllocated,
    shortOfMemory,
    waits,
  ],
  [
    "an address for a failed VM being started again waits for a host too",
    restartedFromError,
    ipAllocated,
    noHosts,
    waits,
  ],
  [
    "a host with room places a waiting VM and boots it",
    waitingPending,
    hostAvailable,
    ctx,
    placed(waitingPending),
  ],
  [
    "a host with room places a VM waiting after a start",
    waitingStarting,
    hostAvailable,
    ctx,
    placed(waitingStarting),
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
    failsUnplaced(
      "schedule",
      "schedule timed out: no host for the VM within 500 ms: no live provisioner host",
    ),
  ],
  [
    "no room by the schedule deadline names what was missing",
    waitingPending,
    deadline("schedule"),
    fullHost,
    failsUnplaced(
      "schedule",
      "schedule timed out: no host for the VM within 500 ms: no live host with room for 2 vCPU and 1024 MB (1 live)",
    ),
  ],
  [
    "room found at the schedule deadline still places the VM",
    waitingPending,
    deadline("schedule"),
    ctx,
    placed(waitingPending),
  ],
  ["a schedule deadline of a placed VM is stale", "provisioning", deadline("schedule"), ctx, nothing],
  [
    "a failed allocation fails the VM",
    "pending",
    allocationFailed,
    ctx,
    failsUnplaced("allocate", "IP allocation failed: exhausted (pool default)"),
  ],
  ["a boot makes a provisioning VM running", "provisioning", booted(), ctx, runs],
  [
    "a failed boot fails the VM and gives back address and host",
    "provisioning",
    bootFailed(),
    ctx,
    failsPlaced("boot", "boot failed on host host-a at kernel: no kernel"),
  ],
  [
    "a failed resume fails the VM naming the start",
    "starting",
    bootFailed(),
    ctx,
    failsPlaced("start", "start failed on host host-a at kernel: no kernel"),
  ],
  [
    "a failed reboot fails the VM naming the restart",
    "restarting",
    bootFailed(),
    ctx,
    failsPlaced("restart", "restart failed on host host-a at kernel: no kernel"),
  ],
  ["a late boot failure of a running VM changes nothing", "running", bootFailed(), ctx, nothing],
  [
    "a silent provisioner past the boot deadline fails the VM naming the step",
    "provisioning",
    deadline("boot"),
    ctx,
    failsPlaced("boot", timedOut("boot")),
  ],
  [
    "a silent provisioner past the start deadline fails the VM",
    "starting",
    deadline("start"),
    ctx,
    failsPlaced("start", timedOut("start")),
  ],
  [
    "a silent provisioner past the stop deadline fails the VM",
    "stopping",
    deadline("stop"),
    ctx,
    failsPlaced("stop", timedOut("stop")),
  ],
  [
    "a silent provisioner past the restart deadline fails the VM",
    "restarting",
    deadline("restart"),
    ctx,
    failsPlaced("restart", timedOut("restart")),
  ],
  [
    // The 202 is kept: the destroy waits in the host's queue, sent again as the very same message.
    "a silent provisioner past the delete deadline deletes the VM, releases its address and sends the destroy again",
    "deleting",
    deadline("delete"),
    ctx,
    decision(
      [{ type: "VmDeleted", data: { vmId: VM_ID } }],
      [
        releaseIp,
        {
          ...destroyOn(HOST),
          messageId: stepCommandId(VM_ID, vmIn("deleting").stepVersion, "destroy"),
        },
      ],
      null,
    ),
  ],
  [
    "a silent IP pool past the allocation deadline fails the VM and releases what may still come",
    "pending",
    deadline("allocate"),
    ctx,
    failsUnplaced("allocate", timedOut("allocate", "the IP pool service")),
  ],
  ["a deadline of a step already answered changes nothing", "running", deadline("boot"), ctx, nothing],
  ["a late address for a failed VM is released", "error", ipAllocated, ctx, only(releaseIp)],
  ["a late address for a deleted VM is released", "deleted", ipAllocated, ctx, only(releaseIp)],
  ["a duplicate address for a provisioning VM changes nothing", "provisioning", ipAllocated, ctx, nothing],
  ["a release the IP pool reports changes nothing", "error", ipReleased, ctx, nothing],
  ["a late boot of a deleted VM is destroyed", "deleted", booted(), ctx, only(destroyOn(HOST))],
  ["a duplicate boot of a running VM changes nothing", "running", booted(), ctx, nothing],
  [
    "a boot on a host the VM is not placed on is destroyed there",
    "running",
    booted("host-b"),
    ctx,
    only(destroyOn("host-b")),
  ],
  [
    "a boot from another host while the VM is provisioning is not taken for its boot: it is destroyed there",
    "provisioning",
    booted("host-b"),
    ctx,
    only(destroyOn("host-b")),
  ],
  [
    "a boot failure from another host while the VM is provisioning changes nothing",
    "provisioning",
    bootFailed("host-b"),
    ctx,
    nothing,
  ],
  ["a resumed VM is running", "starting", booted(), ctx, runs],
  ["a rebooted VM is running", "restarting", booted(), ctx, runs],
  [
    "a shut down VM is stopped",
    "stopping",
    shutDown(),
    ctx,
    decision([{ type: "VmStopped", data: { vmId: VM_ID } }], [], null),
  ],
  ["a late shutdown of a running VM changes nothing", "running", shutDown(), ctx, nothing],
  ["a shutdown reported by another host changes nothing", "stopping", shutDown("host-b"), ctx, nothing],
  [
    "a failed shutdown fails the VM and gives everything back",
    "stopping",
    shutdownFailed(),
    ctx,
    failsPlaced("stop", "stop failed on host host-a: stuck"),
  ],
  ["a late failed shutdown of a stopped VM changes nothing", "stopped", shutdownFailed(), ctx, nothing],
  [
    "a failed shutdown reported by another host changes nothing",
    "stopping",
    shutdownFailed("host-b"),
    ctx,
    nothing,
  ],
  ["a destroyed VM is deleted and its address released", "deleting", destroyed(), ctx, deleted],
  ["a late destroy of a running VM changes nothing", "running", destroyed(), ctx, nothing],
  ["a destroy reported by another host changes nothing", "deleting", destroyed("host-b"), ctx, nothing],
  [
    "a VM on a lost host fails with host lost",
    "running",
    hostLost(),
    ctx,
    failsPlaced("host", "host lost: no heartbeat from host-a for 15000 ms"),
  ],
  [
    "a stopped VM on a lost host fails with host lost",
    "stopped",
    hostLost(),
    ctx,
    failsPlaced("host", "host lost: no heartbeat from host-a for 15000 ms"),
  ],
  ["a VM being deleted on a lost host is deleted", "deleting", hostLost(), ctx, deleted],
  ["a VM on host-a is not failed by host-b's loss", "running", hostLost("host-b"), ctx, nothing],
  [
    "a VM being deleted on host-a is not deleted by host-b's loss",
    "deleting",
    hostLost("host-b"),
    ctx,
    nothing,
  ],
  ["a VM on host-a is not failed by a VM lost on host-b", "running", lost("host-b"), ctx, nothing],
  [
    "a VM whose process is lost fails",
    "running",
    lost(),
    ctx,
    failsPlaced("run", "VM lost on host host-a: process exited"),
  ],
  ["a VM being deleted whose process is lost is deleted", "deleting", lost(), ctx, deleted],
  ["a stopped VM has no process to lose", "stopped", lost(), ctx, nothing],
  ["a failed VM is not failed again by its host", "error", hostLost(), ctx, nothing],
  ["news of a VM this service never created changes nothing", "absent", booted(), ctx, nothing],
  [
    "the answer to the AllocateIp out now places a VM started again after an error",
    restartedFromError,
    answering(ipAllocated, secondRequest),
    ctx,
    placed(restartedFromError),
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
    only(releaseIp),
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
    failsUnplaced("allocate", "IP allocation failed: exhausted (pool default)"),
  ],
  [
    "a late allocation failure of a placed VM changes nothing",
    "provisioning",
    allocationFailed,
    ctx,
    nothing,
  ],
];

describe("the lifecycle process", () => {
  it.each(cases)("%s", (_name, status, input, c, expected) => {
    const vm = typeof status === "string" ? vmIn(status) : status;
    const d = react(input, vm, c);
    // Strict: a key set to undefined (a prefix length the lease never had) is a difference too.
    expect(d).toStrictEqual(expected);
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
    apply(react(lost(), vm, ctx));
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

  it("places a VM that waited with a lease from before prefix and gateway were kept with just its address", () => {
    const oldWait = replay(
      [{ type: "VmAwaitingHost", data: { vmId: VM_ID, ipAddress: IP } }],
      vmIn("pending"),
    );
    expect(react(hostAvailable, oldWait, ctx).events).toStrictEqual([
      { type: "VmProvisioning", data: { vmId: VM_ID, ipAddress: IP, hostId: HOST } },
    ]);
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
    expect(d).toEqual(
      decision(
        [
          { type: "VmDeleteRequested", data: { vmId: VM_ID } },
          { type: "VmDeleted", data: { vmId: VM_ID } },
        ],
        [releaseIp],
        null,
      ),
    );
  });

  it("an event that leaves the deadline alone keeps the one an earlier event of the same decision set", () => {
    const stop: VmEvent = { type: "VmStopRequested", data: { vmId: VM_ID } };
    const rename: VmEvent = { type: "VmUpdated", data: { vmId: VM_ID, name: "web-2" } };
    const d = withFollowUps([stop, rename], vmIn("running"));
    const shutDownVm: Outgoing = {
      service: "provisioner",
      hostId: HOST,
      command: { type: "ShutDownVm", data: { vmId: VM_ID } },
      messageId: stepCommandId(VM_ID, 4, "shutdown"),
    };
    expect(d).toEqual(decision([stop, rename], [shutDownVm], "stop"));
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
      nothing,
    );
    // A resend of a step already answered is stale.
    expect(react({ type: "ResendDue", data: { step: "boot", attempt: 1 } }, vmIn("stopping"), ctx)).toEqual(
      nothing,
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
      expect(react(deadline(stepOf(vm)!), vm, unreachable)).toEqual({ ...nothing, deadline: stepOf(vm) });
      // Another host being unreachable is no reason to wait.
      expect(react(deadline(stepOf(vm)!), vm, otherUnreachable).events.map((e) => e.type)).toEqual([
        status === "deleting" ? "VmDeleted" : "VmFailed",
      ]);
    }
  });

  it("a deadline whose receiver has not taken its commands yet (down, or behind) waits instead of failing the VM", () => {
    const behind = (step: Step): ProcessInput => ({
      type: "DeadlineReached",
      data: { step, timeoutMs: 500, receiverBehind: true },
    });
    const vm = vmIn("pending");
    expect(react(behind("allocate"), vm, ctx)).toEqual({ ...nothing, deadline: "allocate" });
    // Still stale when the step was answered meanwhile.
    expect(react(behind("allocate"), vmIn("provisioning"), ctx)).toEqual({
      ...nothing,
      deadline: undefined,
    });
    // Once the receiver has taken its queue, the same deadline fails the VM.
    expect(react(deadline("allocate"), vm, ctx).events.map((e) => e.type)).toEqual(["VmFailed"]);
  });

  it("every step it starts has a deadline that fails the VM when it passes (a delete's deletes it)", () => {
    const deleted = react(deadline("delete"), vmIn("deleting"), ctx);
    expect(replay(deleted.events, vmIn("deleting")).status).toBe("deleted");
    for (const status of ["pending", "provisioning", "starting", "stopping", "restarting"] as const) {
      const vm = vmIn(status);
      const d = react(deadline(stepOf(vm)!), vm, ctx);
      expect(d.events.map((e) => e.type)).toEqual(["VmFailed"]);
      expect(replay(d.events, vm).status).toBe("error");
    }
  });
});
