import { describe, expect, it } from "vitest";
import {
  type AgentCommand,
  type Found,
  type HeldStatus,
  type HeldVm,
  type Operation,
  plan,
  type Step,
  settle,
} from "../src/domain/plan.ts";
import type { Instance } from "../src/drivers/driver.ts";

const ctx = { hostId: "h1", driver: "fake" as const };
const vmId = "srv-00000001";
const spec = {
  vmId,
  vcpuCount: 1,
  memoryMb: 128,
  ipAddress: "10.0.0.2",
  prefixLength: 24,
  gateway: "10.0.0.1",
};
/** The record the store holds (from the boot it recorded). */
const stored: Instance = {
  vmId,
  driver: "fake",
  consoleLog: "/run/x/console.log",
  runDir: "/run/x",
  ipAddress: "10.0.0.2",
  prefixLength: 24,
  startedAt: "2026-01-01T00:00:00.000Z",
  bootMs: 42,
};
/** The record the driver has: a later boot than the store knows of (the agent died before recording it). */
const latest: Instance = { ...stored, startedAt: "2026-01-01T00:05:00.000Z", bootMs: 7 };

type Held = HeldStatus | "absent";
type Driver = "nothing" | "running" | "half-booted" | "stopped" | "gone";
const HELD: readonly Held[] = ["absent", "booting", "running", "stopped", "failed", "lost", "destroyed"];
const DRIVER: readonly Driver[] = ["nothing", "running", "half-booted", "stopped", "gone"];

function held(status: HeldStatus, operation?: Operation): HeldVm {
  const withInstance = status !== "destroyed" && status !== "failed";
  return { vmId, status, spec, instance: withInstance ? stored : undefined, version: 3, operation };
}
function heldIn(status: Held): HeldVm | undefined {
  return status === "absent" ? undefined : held(status);
}
function found(driver: Driver): Found | undefined {
  switch (driver) {
    case "nothing":
      return undefined;
    case "running":
      return { status: "running", instance: latest };
    case "half-booted": {
      // Spawned, never reported ready: the record has no boot time.
      const { bootMs: _, ...spawned } = latest;
      return { status: "running", instance: spawned };
    }
    default:
      return { status: driver, instance: latest };
  }
}

/** A step as a short word: `boot`, `boot/clear` (what the driver has goes first), `VmBooted>running` (answer, row status). */
function describeStep(step: Step, driverHas: Found | undefined): string {
  switch (step.kind) {
    case "answer":
      return step.change ? `${step.answer.type}>${step.change.status}` : step.answer.type;
    case "boot":
      if (!step.clear) return "boot";
      if (step.clear !== driverHas?.instance) return "boot/clear(not the driver's record)";
      return step.graceful ? "boot/graceful" : "boot/clear";
    case "stop":
      return step.instance === driverHas?.instance ? "stop" : "stop(not the driver's record)";
    case "destroy":
      return step.instance === (driverHas?.instance ?? undefined) ? "destroy" : "destroy(stored record)";
  }
}

const boot: AgentCommand = { type: "BootVm", data: spec };
const cmd = (type: Exclude<AgentCommand["type"], "BootVm">): AgentCommand =>
  ({ type, data: { vmId } }) as AgentCommand;

/**
 * Every command × what the store holds × what the driver has. Columns: the driver has nothing, a VM
 * running (ready, as asked), one half-booted (its agent died before the guest was ready), one
 * stopped, one gone (its process ended).
 */
const expected: Record<AgentCommand["type"], Record<Held, readonly string[]>> = {
  BootVm: {
    //          nothing  running             half-booted   stopped       gone
    absent: ["boot", "VmBooted>running", "boot/clear", "boot/clear", "boot/clear"],
    booting: ["boot", "VmBooted>running", "boot/clear", "boot/clear", "boot/clear"],
    running: ["boot", "VmBooted>running", "boot/clear", "boot/clear", "boot/clear"],
    stopped: ["boot", "VmBooted>running", "boot/clear", "boot/clear", "boot/clear"],
    failed: ["boot", "VmBooted>running", "boot/clear", "boot/clear", "boot/clear"],
    lost: ["boot", "VmBooted>running", "boot/clear", "boot/clear", "boot/clear"],
    destroyed: ["boot", "VmBooted>running", "boot/clear", "boot/clear", "boot/clear"],
  },
  ResumeVm: {
    absent: ["VmBootFailed", "VmBootFailed", "VmBootFailed", "VmBootFailed", "VmBootFailed"],
    booting: ["boot", "VmBooted>running", "boot/clear", "boot/clear", "boot/clear"],
    running: ["boot", "VmBooted>running", "boot/clear", "boot/clear", "boot/clear"],
    stopped: ["boot", "VmBooted>running", "boot/clear", "boot/clear", "boot/clear"],
    failed: ["boot", "VmBooted>running", "boot/clear", "boot/clear", "boot/clear"],
    lost: ["boot", "VmBooted>running", "boot/clear", "boot/clear", "boot/clear"],
    destroyed: ["VmBootFailed", "VmBootFailed", "VmBootFailed", "VmBootFailed", "VmBootFailed"],
  },
  RebootVm: {
    absent: ["VmBootFailed", "VmBootFailed", "VmBootFailed", "VmBootFailed", "VmBootFailed"],
    booting: ["boot", "boot/graceful", "boot/clear", "boot/clear", "boot/clear"],
    running: ["boot", "boot/graceful", "boot/clear", "boot/clear", "boot/clear"],
    stopped: ["boot", "boot/graceful", "boot/clear", "boot/clear", "boot/clear"],
    failed: ["boot", "boot/graceful", "boot/clear", "boot/clear", "boot/clear"],
    lost: ["boot", "boot/graceful", "boot/clear", "boot/clear", "boot/clear"],
    destroyed: ["VmBootFailed", "VmBootFailed", "VmBootFailed", "VmBootFailed", "VmBootFailed"],
  },
  ShutDownVm: {
    absent: [
      "VmShutdownFailed",
      "VmShutdownFailed",
      "VmShutdownFailed",
      "VmShutdownFailed",
      "VmShutdownFailed",
    ],
    booting: ["VmShutDown>stopped", "stop", "stop", "VmShutDown>stopped", "VmShutDown>stopped"],
    running: ["VmShutDown>stopped", "stop", "stop", "VmShutDown>stopped", "VmShutDown>stopped"],
    stopped: ["VmShutDown>stopped", "stop", "stop", "VmShutDown>stopped", "VmShutDown>stopped"],
    failed: ["VmShutDown>failed", "stop", "stop", "VmShutDown>failed", "VmShutDown>failed"],
    lost: ["VmShutDown>lost", "stop", "stop", "VmShutDown>lost", "VmShutDown>lost"],
    destroyed: [
      "VmShutdownFailed",
      "VmShutdownFailed",
      "VmShutdownFailed",
      "VmShutdownFailed",
      "VmShutdownFailed",
    ],
  },
  DestroyVm: {
    absent: ["VmDestroyed", "destroy", "destroy", "destroy", "destroy"],
    booting: ["destroy(stored record)", "destroy", "destroy", "destroy", "destroy"],
    running: ["destroy(stored record)", "destroy", "destroy", "destroy", "destroy"],
    stopped: ["destroy(stored record)", "destroy", "destroy", "destroy", "destroy"],
    failed: ["destroy", "destroy", "destroy", "destroy", "destroy"],
    lost: ["destroy(stored record)", "destroy", "destroy", "destroy", "destroy"],
    destroyed: ["VmDestroyed", "destroy", "destroy", "destroy", "destroy"],
  },
};

const commands: Record<AgentCommand["type"], AgentCommand> = {
  BootVm: boot,
  ResumeVm: cmd("ResumeVm"),
  RebootVm: cmd("RebootVm"),
  ShutDownVm: cmd("ShutDownVm"),
  DestroyVm: cmd("DestroyVm"),
};
const cases = Object.entries(expected).flatMap(([type, rows]) =>
  HELD.flatMap((h) => DRIVER.map((d, i) => [type as AgentCommand["type"], h, d, rows[h][i]!] as const)),
);

describe("what the agent does with a command", () => {
  it("covers every command, held status and driver status", () => {
    expect(cases).toHaveLength(5 * HELD.length * DRIVER.length);
  });

  it.each(cases)("%s on a VM held %s that the driver has %s: %s", (type, h, d, want) => {
    const driverHas = found(d);
    expect(describeStep(plan(commands[type], heldIn(h), driverHas, ctx), driverHas)).toBe(want);
  });

  it("a boot of a VM the driver runs as asked answers with its record and boot time, and records it running", () => {
    expect(plan(boot, held("booting"), found("running"), ctx)).toEqual({
      kind: "answer",
      answer: { type: "VmBooted", data: { vmId, hostId: "h1", driver: "fake", bootMs: 7 } },
      change: { status: "running", spec, instance: latest },
    });
  });

  it("a VM that runs with another address than the boot asks for is replaced, not taken for it", () => {
    const other: Found = { status: "running", instance: { ...latest, ipAddress: "10.0.0.99" } };
    expect(plan(boot, held("running"), other, ctx)).toMatchObject({
      kind: "boot",
      clear: other.instance,
      graceful: false,
    });
    expect(plan(cmd("ResumeVm"), held("stopped"), other, ctx)).toMatchObject({ kind: "boot" });
  });

  it("a resume and a reboot boot the spec the VM was first booted with", () => {
    expect(plan(cmd("ResumeVm"), held("stopped"), found("stopped"), ctx)).toMatchObject({
      kind: "boot",
      spec,
    });
    expect(plan(cmd("RebootVm"), held("running"), found("running"), ctx)).toMatchObject({
      kind: "boot",
      spec,
    });
  });

  it("the host's tap goes into every boot, also of a spec stored without one", () => {
    const tapped = { ...ctx, tap: "mk-00000001" };
    expect(plan(boot, undefined, undefined, tapped)).toMatchObject({ spec: { tap: "mk-00000001" } });
    expect(plan(cmd("ResumeVm"), held("stopped"), undefined, tapped)).toMatchObject({
      spec: { ...spec, tap: "mk-00000001" },
    });
  });

  it("a shutdown of a VM recorded as running whose process is gone records it stopped with the driver's record", () => {
    expect(plan(cmd("ShutDownVm"), held("running"), found("gone"), ctx)).toMatchObject({
      kind: "answer",
      change: { status: "stopped", instance: latest },
    });
  });
});

const notHere = `VM ${vmId} is not on host h1`;
const { bootMs: _, ...spawned } = latest;

/** Steps in full (answers with their data and the row they leave, boots with their spec), where the words above say less. */
const steps: Array<[string, AgentCommand, HeldVm | undefined, Found | undefined, Step]> = [
  [
    "a boot with nothing anywhere boots the spec asked for",
    boot,
    undefined,
    undefined,
    { kind: "boot", spec, clear: undefined, graceful: false },
  ],
  [
    "a boot over a half-booted VM clears what the driver has first",
    boot,
    held("booting"),
    found("half-booted"),
    { kind: "boot", spec, clear: spawned, graceful: false },
  ],
  [
    "a resume of a VM this host never held fails its boot at prepare",
    cmd("ResumeVm"),
    undefined,
    found("running"),
    {
      kind: "answer",
      answer: { type: "VmBootFailed", data: { vmId, hostId: "h1", step: "prepare", reason: notHere } },
    },
  ],
  [
    "a reboot of a destroyed VM fails its boot at prepare",
    cmd("RebootVm"),
    held("destroyed"),
    undefined,
    {
      kind: "answer",
      answer: { type: "VmBootFailed", data: { vmId, hostId: "h1", step: "prepare", reason: notHere } },
    },
  ],
  [
    "a resume of a VM the driver runs as stored answers booted with the driver's boot time",
    cmd("ResumeVm"),
    held("stopped"),
    found("running"),
    {
      kind: "answer",
      answer: { type: "VmBooted", data: { vmId, hostId: "h1", driver: "fake", bootMs: 7 } },
      change: { status: "running", spec, instance: latest },
    },
  ],
  [
    "a reboot of a running VM stops it gracefully first",
    cmd("RebootVm"),
    held("running"),
    found("running"),
    { kind: "boot", spec, clear: latest, graceful: true },
  ],
  [
    "a shutdown of a VM this host never held fails",
    cmd("ShutDownVm"),
    undefined,
    undefined,
    { kind: "answer", answer: { type: "VmShutdownFailed", data: { vmId, hostId: "h1", reason: notHere } } },
  ],
  [
    "a shutdown of a running VM stops the driver's record",
    cmd("ShutDownVm"),
    held("running"),
    found("running"),
    { kind: "stop", instance: latest },
  ],
  [
    "a shutdown of a VM the driver has stopped keeps the driver's record",
    cmd("ShutDownVm"),
    held("running"),
    found("stopped"),
    {
      kind: "answer",
      answer: { type: "VmShutDown", data: { vmId, hostId: "h1" } },
      change: { status: "stopped", spec, instance: latest },
    },
  ],
  [
    "a shutdown of a VM the driver has nothing for keeps the stored record",
    cmd("ShutDownVm"),
    held("stopped"),
    undefined,
    {
      kind: "answer",
      answer: { type: "VmShutDown", data: { vmId, hostId: "h1" } },
      change: { status: "stopped", spec, instance: stored },
    },
  ],
  [
    "a shutdown of a failed VM with no record anywhere forgets the record",
    cmd("ShutDownVm"),
    held("failed"),
    undefined,
    {
      kind: "answer",
      answer: { type: "VmShutDown", data: { vmId, hostId: "h1" } },
      change: { status: "failed", spec, instance: null },
    },
  ],
  [
    "a destroy of a VM held nowhere answers destroyed",
    cmd("DestroyVm"),
    undefined,
    undefined,
    { kind: "answer", answer: { type: "VmDestroyed", data: { vmId, hostId: "h1" } } },
  ],
  [
    "a destroy of a VM only the driver has destroys the driver's record",
    cmd("DestroyVm"),
    held("destroyed"),
    found("gone"),
    { kind: "destroy", instance: latest },
  ],
  [
    "a destroy of a held VM the driver has nothing for destroys the stored record",
    cmd("DestroyVm"),
    held("stopped"),
    undefined,
    { kind: "destroy", instance: stored },
  ],
  [
    "a destroy of a failed VM with no record anywhere destroys nothing but the row",
    cmd("DestroyVm"),
    held("failed"),
    undefined,
    { kind: "destroy", instance: undefined },
  ],
];

describe("what the agent does with a command, in full", () => {
  it.each(steps)("%s", (_name, command, h, driverHas, step) => {
    expect(plan(command, h, driverHas, ctx)).toEqual(step);
  });

  it.each<[string, Partial<Instance>]>([
    ["another address", { ipAddress: "10.0.0.99" }],
    ["another prefix length", { prefixLength: 16 }],
    ["no boot time (never reported ready)", { bootMs: undefined }],
  ])("a VM the driver runs with %s is not running as asked: it is booted again", (_, differs) => {
    const other: Found = { status: "running", instance: { ...latest, ...differs } };
    for (const command of [boot, cmd("ResumeVm")])
      expect(plan(command, held("running"), other, ctx)).toEqual({
        kind: "boot",
        spec,
        clear: other.instance,
        graceful: false,
      });
    expect(plan(cmd("RebootVm"), held("running"), other, ctx)).toMatchObject({ graceful: false });
  });

  it("a spec stored with its own tap keeps it", () => {
    const tapped = { ...ctx, tap: "mk-new" };
    const h: HeldVm = { ...held("stopped"), spec: { ...spec, tap: "mk-old" } };
    expect(plan(cmd("ResumeVm"), h, undefined, tapped)).toMatchObject({ spec: { ...spec, tap: "mk-old" } });
    expect(plan(cmd("RebootVm"), h, undefined, ctx)).toMatchObject({ spec: { ...spec, tap: "mk-old" } });
    // A host without a tap boots the stored spec as it is.
    expect(plan(cmd("ResumeVm"), held("stopped"), undefined, ctx)).toEqual({
      kind: "boot",
      spec,
      clear: undefined,
      graceful: false,
    });
  });
});

type Settles = readonly string[];
/** What a VM becomes without a command, by held status × what the driver has (same columns as above). */
const settles: Array<[string, HeldVm, Settles]> = [
  ["booting", held("booting"), ["failed", "running", "failed+clear", "failed+clear", "failed+clear"]],
  ["running", held("running"), ["lost!", "running", "running", "stopped", "lost!"]],
  [
    "running, a stop under way",
    held("running", "ShutDownVm"),
    ["stopped", "running", "running", "stopped", "stopped"],
  ],
  [
    "running, a destroy under way",
    held("running", "DestroyVm"),
    ["stopped", "running", "running", "stopped", "stopped"],
  ],
  ["stopped", held("stopped"), ["stopped", "running", "stopped", "stopped", "stopped"]],
  ["failed", held("failed"), ["failed", "running", "failed", "failed", "failed"]],
  ["lost", held("lost"), ["lost", "running", "lost", "lost", "lost"]],
];

describe("what a VM has become when the agent looks without a command (at start, in the watch)", () => {
  it.each(settles.flatMap(([name, h, row]) => DRIVER.map((d, i) => [name, d, h, row[i]!] as const)))(
    "a VM held %s that the driver has %s",
    (_name, d, h, want) => {
      const driverHas = found(d);
      const next = settle(h, driverHas);
      const word = `${next.status}${next.lost ? "!" : ""}${next.clear ? "+clear" : ""}`;
      expect(word).toBe(want);
      if (next.clear) expect(next.clear).toBe(driverHas?.instance);
    },
  );

  it("a boot whose agent died after the guest was ready is adopted with the driver's record", () => {
    expect(settle(held("booting"), found("running"))).toEqual({
      status: "running",
      instance: latest,
      lost: false,
      clear: undefined,
    });
  });

  it.each<[string, HeldVm, Driver, ReturnType<typeof settle>]>([
    [
      "a boot cut short forgets the record it clears",
      held("booting"),
      "gone",
      { status: "failed", instance: null, lost: false, clear: latest },
    ],
    [
      "a boot never spawned has nothing to clear",
      held("booting"),
      "nothing",
      { status: "failed", instance: null, lost: false, clear: undefined },
    ],
    [
      "a lost VM keeps the stored record",
      held("running"),
      "nothing",
      { status: "lost", instance: stored, lost: true, clear: undefined },
    ],
    [
      "a lost VM keeps the driver's record",
      held("running"),
      "gone",
      { status: "lost", instance: latest, lost: true, clear: undefined },
    ],
    [
      "a VM stopped meanwhile keeps the driver's record",
      held("running"),
      "stopped",
      { status: "stopped", instance: latest, lost: false, clear: undefined },
    ],
    [
      "a VM half-booted again, held running, keeps running with the driver's record",
      held("running"),
      "half-booted",
      { status: "running", instance: spawned, lost: false, clear: undefined },
    ],
    [
      "a VM ended by a stop under way is stopped, not lost",
      held("running", "ShutDownVm"),
      "nothing",
      { status: "stopped", instance: stored, lost: false, clear: undefined },
    ],
    [
      "a failed VM with no record anywhere has none",
      held("failed"),
      "nothing",
      { status: "failed", instance: null, lost: false, clear: undefined },
    ],
  ])("%s", (_name, h, d, expected) => {
    expect(settle(h, found(d))).toEqual(expected);
  });
});
