import type {
  MessageOf,
  VmAwaitingHost,
  VmCreated,
  VmDeleted,
  VmDeleteRequested,
  VmFailed,
  VmProvisioning,
  VmRestartRequested,
  VmRunning,
  VmStartRequested,
  VmStatus,
  VmStopped,
  VmStopRequested,
  VmUpdated,
} from "@mikrom/contracts";

/** The events of the VM aggregate as the domain sees them: type tag and validated data. */
export type VmEvent =
  | MessageOf<typeof VmCreated>
  | MessageOf<typeof VmUpdated>
  | MessageOf<typeof VmProvisioning>
  | MessageOf<typeof VmAwaitingHost>
  | MessageOf<typeof VmRunning>
  | MessageOf<typeof VmStartRequested>
  | MessageOf<typeof VmStopRequested>
  | MessageOf<typeof VmStopped>
  | MessageOf<typeof VmRestartRequested>
  | MessageOf<typeof VmDeleteRequested>
  | MessageOf<typeof VmDeleted>
  | MessageOf<typeof VmFailed>;
export type VmEventType = VmEvent["type"];

/**
 * A VM's place in its life. The public statuses plus the two the reads never show: `absent` (no such
 * stream yet) and `deleted` (gone from reads, history kept).
 */
export type Lifecycle = "absent" | VmStatus | "deleted";

export interface Vm {
  readonly status: Lifecycle;
  readonly vmId: string | null;
  readonly userId: number | null;
  readonly name: string;
  readonly description: string | null;
  readonly vcpuCount: number;
  readonly memoryMb: number;
  readonly pool: string | null;
  /** The address held for this VM; null once given back. */
  readonly ipAddress: string | null;
  /** The host the VM is placed on (holding its capacity); null once given back. */
  readonly hostId: string | null;
  /** An AllocateIp is out and not yet answered: a failure now must release whatever it may get. */
  readonly allocating: boolean;
  /**
   * How many AllocateIp this VM has sent. The latest one's message id is derived from it
   * (allocationRequestId), so an answer can be matched to the request it answers by its causation id.
   */
  readonly allocations: number;
  /** How the VM's address is reached (from the IP pool), kept while it holds one: a boot needs it. */
  readonly lease: Lease | null;
  readonly errorMessage: string | null;
  /** The stream's version: the number of events folded. */
  readonly version: number;
  /**
   * The version of the event that started the step in flight. The step's command carries an id
   * derived from it (stepCommandId), so the command sent again is the same message.
   */
  readonly stepVersion: number;
}

/** What the boot command needs of an address, kept while no host has been found for it. */
export interface Lease {
  readonly prefixLength?: number;
  readonly gateway?: string;
}

export const initialVm: Vm = Object.freeze({
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
});

const ALL_LIVE: readonly VmStatus[] = [
  "pending",
  "provisioning",
  "starting",
  "running",
  "stopping",
  "stopped",
  "restarting",
  "error",
  "deleting",
];
const BUT_DELETING: readonly VmStatus[] = ALL_LIVE.filter((s) => s !== "deleting");

/**
 * The transition table: for every event, the statuses it may follow and the status it leads to
 * (`null`: status unchanged). The decider and the lifecycle only ever emit an event from one of its
 * `from` statuses; a test holds them to it.
 */
export const transitions: Readonly<
  Record<VmEventType, { from: readonly Lifecycle[]; to: Lifecycle | null }>
> = {
  VmCreated: { from: ["absent"], to: "pending" },
  VmUpdated: { from: BUT_DELETING, to: null },
  VmProvisioning: { from: ["pending", "starting"], to: "provisioning" },
  // Waiting for a host is part of the step that asked for the address: the status stays.
  VmAwaitingHost: { from: ["pending", "starting"], to: null },
  VmRunning: { from: ["provisioning", "starting", "restarting"], to: "running" },
  VmStartRequested: { from: ["stopped", "error"], to: "starting" },
  VmStopRequested: { from: ["running"], to: "stopping" },
  VmStopped: { from: ["stopping"], to: "stopped" },
  VmRestartRequested: { from: ["running"], to: "restarting" },
  VmDeleteRequested: { from: BUT_DELETING, to: "deleting" },
  VmDeleted: { from: ["deleting"], to: "deleted" },
  // A VM being deleted never fails: whatever befalls it (its host lost, its deadline past), it ends deleted.
  VmFailed: { from: BUT_DELETING.filter((s) => s !== "error"), to: "error" },
};

/** Events that start a step (one with a deadline, and a command to send unless it waits for a host). */
const STARTS_STEP: ReadonlySet<VmEventType> = new Set([
  "VmCreated",
  "VmAwaitingHost",
  "VmProvisioning",
  "VmStartRequested",
  "VmStopRequested",
  "VmRestartRequested",
  "VmDeleteRequested",
]);

/** Folds one event into the state. Never throws: history is a fact, even when it breaks today's table. */
export function evolve(vm: Vm, event: VmEvent): Vm {
  const version = vm.version + 1;
  const stepVersion = STARTS_STEP.has(event.type) ? version : vm.stepVersion;
  return { ...fold(vm, event), version, stepVersion };
}

function fold(vm: Vm, event: VmEvent): Vm {
  const to = transitions[event.type].to;
  const status = to ?? vm.status;
  switch (event.type) {
    case "VmCreated": {
      const d = event.data;
      return {
        ...initialVm,
        status,
        vmId: d.vmId,
        userId: d.userId,
        name: d.name,
        description: d.description,
        vcpuCount: d.vcpuCount,
        memoryMb: d.memoryMb,
        pool: d.pool ?? null,
        allocating: true,
        allocations: 1,
      };
    }
    case "VmUpdated":
      return {
        ...vm,
        name: event.data.name ?? vm.name,
        description: event.data.description !== undefined ? event.data.description : vm.description,
      };
    case "VmProvisioning": {
      const { prefixLength, gateway } = event.data;
      return {
        ...vm,
        status,
        ipAddress: event.data.ipAddress,
        hostId: event.data.hostId,
        allocating: false,
        lease: {
          ...(prefixLength !== undefined ? { prefixLength } : {}),
          ...(gateway !== undefined ? { gateway } : {}),
        },
      };
    }
    case "VmAwaitingHost": {
      const { ipAddress, prefixLength, gateway } = event.data;
      return {
        ...vm,
        status,
        ipAddress,
        allocating: false,
        lease: {
          ...(prefixLength !== undefined ? { prefixLength } : {}),
          ...(gateway !== undefined ? { gateway } : {}),
        },
      };
    }
    case "VmRunning":
      return {
        ...vm,
        status,
        hostId: event.data.hostId,
        ipAddress: event.data.ipAddress,
        errorMessage: null,
      };
    case "VmStartRequested": {
      // From `error` nothing is held: the start provisions again from the address up.
      const allocating = startAllocates(vm);
      return { ...vm, status, allocating, allocations: vm.allocations + (allocating ? 1 : 0) };
    }
    case "VmFailed":
      // Compensation goes out with this event: address and host are given back.
      return {
        ...vm,
        status,
        errorMessage: event.data.errorMessage,
        ipAddress: null,
        hostId: null,
        allocating: false,
        lease: null,
      };
    case "VmDeleted":
      return { ...vm, status, ipAddress: null, hostId: null, allocating: false, lease: null };
    default:
      return { ...vm, status };
  }
}

export function replay(events: Iterable<VmEvent>, from: Vm = initialVm): Vm {
  let vm = from;
  for (const e of events) vm = evolve(vm, e);
  return vm;
}

/**
 * True when a start of this VM asks for a new address: it holds nothing (a VM in error gave its
 * address and host back; a stopped one keeps both).
 */
export function startAllocates(vm: Vm): boolean {
  return vm.hostId === null;
}

/** The step a VM in flight is waiting on; each has its own deadline. */
export type Step = "allocate" | "schedule" | "boot" | "start" | "stop" | "restart" | "delete";

/** True while the VM holds an address and waits for a live host with room to boot on. */
export function awaitingHost(vm: Vm): boolean {
  return vm.lease !== null && vm.hostId === null && (vm.status === "pending" || vm.status === "starting");
}

export function stepOf(vm: Vm): Step | null {
  switch (vm.status) {
    case "pending":
      return awaitingHost(vm) ? "schedule" : "allocate";
    case "provisioning":
      return "boot";
    case "starting":
      return vm.allocating ? "allocate" : awaitingHost(vm) ? "schedule" : "start";
    case "stopping":
      return "stop";
    case "restarting":
      return "restart";
    case "deleting":
      return "delete";
    default:
      return null;
  }
}
