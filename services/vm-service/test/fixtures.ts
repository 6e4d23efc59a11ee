import type { Actor } from "@mikrom/contracts";
import type { VmCommand } from "../src/domain/decide.ts";
import { type Lifecycle, replay, type Vm, type VmEvent } from "../src/domain/vm.ts";

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
