import type { Actor } from "@mikrom/contracts";
import type { VmCommand } from "../src/domain/decide.ts";
import type { HostLoad } from "../src/domain/hosts.ts";
import type { AllocationAnswer, ProcessInput, ReactContext } from "../src/domain/lifecycle.ts";
import { type Lifecycle, replay, type Step, type Vm, type VmEvent } from "../src/domain/vm.ts";

export const VM_ID = "srv-0000abcd";
export const OWNER: Actor = { userId: 7, userName: "ada", superuser: false };
export const STRANGER: Actor = { userId: 8, userName: "bob", superuser: false };
export const ADMIN: Actor = { userId: 1, userName: "root", superuser: true };
export const HOST = "host-a";
export const IP = "10.0.0.5";

const created: VmEvent = {
  type: "VmCreated",
  data: { vmId: VM_ID, userId: OWNER.userId, name: "web-1", description: null, vcpuCount: 2, memoryMb: 1024 },
};
const provisioning: VmEvent = {
  type: "VmProvisioning",
  data: { vmId: VM_ID, ipAddress: IP, hostId: HOST, prefixLength: 24, gateway: "10.0.0.1" },
};
const running: VmEvent = { type: "VmRunning", data: { vmId: VM_ID, hostId: HOST, ipAddress: IP } };
const e = (type: VmEvent["type"]): VmEvent => ({ type, data: { vmId: VM_ID } }) as VmEvent;
const failed: VmEvent = {
  type: "VmFailed",
  data: { vmId: VM_ID, step: "boot", errorMessage: "boot failed" },
};

/** A history that leaves the VM in each status, the way the lifecycle gets it there. */
export const histories: Readonly<Record<Lifecycle, VmEvent[]>> = {
  absent: [],
  pending: [created],
  provisioning: [created, provisioning],
  starting: [created, provisioning, running, e("VmStopRequested"), e("VmStopped"), e("VmStartRequested")],
  running: [created, provisioning, running],
  stopping: [created, provisioning, running, e("VmStopRequested")],
  stopped: [created, provisioning, running, e("VmStopRequested"), e("VmStopped")],
  restarting: [created, provisioning, running, e("VmRestartRequested")],
  error: [created, provisioning, failed],
  deleting: [created, provisioning, running, e("VmDeleteRequested")],
  deleted: [created, provisioning, running, e("VmDeleteRequested"), e("VmDeleted")],
};

export function vmIn(status: Lifecycle): Vm {
  return replay(histories[status]);
}

export const commands = {
  CreateVm: (actor: Actor = OWNER): VmCommand => ({
    type: "CreateVm",
    data: { vmId: VM_ID, actor, name: "web-1", description: null, vcpuCount: 2, memoryMb: 1024 },
  }),
  UpdateVm: (actor: Actor = OWNER): VmCommand => ({
    type: "UpdateVm",
    data: { vmId: VM_ID, actor, name: "web-2" },
  }),
  StartVm: (actor: Actor = OWNER): VmCommand => ({ type: "StartVm", data: { vmId: VM_ID, actor } }),
  StopVm: (actor: Actor = OWNER): VmCommand => ({ type: "StopVm", data: { vmId: VM_ID, actor } }),
  RestartVm: (actor: Actor = OWNER): VmCommand => ({ type: "RestartVm", data: { vmId: VM_ID, actor } }),
  DeleteVm: (actor: Actor = OWNER): VmCommand => ({ type: "DeleteVm", data: { vmId: VM_ID, actor } }),
} as const;

export const NOW = 1_000_000;
/** A live host of 8 vCPUs and 8 GiB with `used` one-vCPU VMs of 512 MB each. */
export const liveHost = (hostId: string, used = 0): HostLoad => ({
  hostId,
  driver: "fake",
  vcpus: 8,
  memoryMb: 8192,
  status: "up",
  lastSeenMs: NOW - 1000,
  unreachableSinceMs: null,
  vms: used,
  usedVcpus: used,
  usedMemoryMb: used * 512,
});
export const ctx: ReactContext = { hosts: [liveHost(HOST)], nowMs: NOW, heartbeatTimeoutMs: 15_000 };
export const noHosts: ReactContext = { ...ctx, hosts: [] };

export const ipAllocated: AllocationAnswer = {
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
export const allocationFailed: AllocationAnswer = {
  type: "IpAllocationFailed",
  data: { vmId: VM_ID, pool: "default", reason: "exhausted" },
};
export const booted = (hostId = HOST): ProcessInput => ({
  type: "VmBooted",
  data: { vmId: VM_ID, hostId, driver: "fake", bootMs: 12 },
});
export const bootFailed = (hostId = HOST): ProcessInput => ({
  type: "VmBootFailed",
  data: { vmId: VM_ID, hostId, step: "kernel", reason: "no kernel" },
});
export const shutDown = (hostId = HOST): ProcessInput => ({
  type: "VmShutDown",
  data: { vmId: VM_ID, hostId },
});
export const shutdownFailed = (hostId = HOST): ProcessInput => ({
  type: "VmShutdownFailed",
  data: { vmId: VM_ID, hostId, reason: "stuck" },
});
export const destroyed = (hostId = HOST): ProcessInput => ({
  type: "VmDestroyed",
  data: { vmId: VM_ID, hostId },
});
export const lost = (hostId = HOST): ProcessInput => ({
  type: "VmLost",
  data: { vmId: VM_ID, hostId, reason: "process exited" },
});
export const hostLost = (hostId = HOST): ProcessInput => ({
  type: "HostLost",
  data: { hostId, reason: `no heartbeat from ${hostId} for 15000 ms` },
});
export const hostAvailable: ProcessInput = { type: "HostAvailable", data: { hostId: HOST } };
export const ipReleased: ProcessInput = {
  type: "IpReleased",
  data: { vmId: VM_ID, poolId: "pool-0000aaaa", address: IP },
};
export const deadline = (step: Step): ProcessInput => ({
  type: "DeadlineReached",
  data: { step, timeoutMs: 500 },
});

export const awaitingHost: VmEvent = {
  type: "VmAwaitingHost",
  data: { vmId: VM_ID, ipAddress: IP, prefixLength: 24, gateway: "10.0.0.1" },
};
/** A VM holding its address and waiting for a host: on create (pending) or on a start after an error. */
export const waitingPending = replay([awaitingHost], vmIn("pending"));
export const waitingStarting = replay(
  [{ type: "VmStartRequested", data: { vmId: VM_ID } }, awaitingHost],
  vmIn("error"),
);
/** A VM that failed after its first address and was started again: its second AllocateIp is out. */
export const restartedFromError = replay(
  [{ type: "VmStartRequested", data: { vmId: VM_ID } }],
  vmIn("error"),
);
