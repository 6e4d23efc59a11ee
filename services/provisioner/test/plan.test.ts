import { describe, expect, it } from "vitest";
import { type AgentCommand, afterRestart, type HeldStatus, type HeldVm, plan } from "../src/agent/plan.ts";
import type { Instance, InstanceStatus } from "../src/drivers/driver.ts";

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
const instance: Instance = {
  vmId,
  driver: "fake",
  consoleLog: "/run/x/console.log",
  runDir: "/run/x",
  ipAddress: "10.0.0.2",
  prefixLength: 24,
  startedAt: "2026-01-01T00:00:00.000Z",
  bootMs: 42,
};
function held(status: HeldStatus, withInstance = status !== "destroyed" && status !== "failed"): HeldVm {
  return { vmId, status, spec, instance: withInstance ? instance : undefined, version: 3 };
}
const boot: AgentCommand = { type: "BootVm", data: spec };
const cmd = (type: Exclude<AgentCommand["type"], "BootVm">): AgentCommand =>
  ({ type, data: { vmId } }) as AgentCommand;

/** [command, held status (or "absent"), driver status, expected step kind, expected answer type] */
const table: Array<[AgentCommand, HeldStatus | "absent", InstanceStatus | undefined, string, string?]> = [
  [boot, "absent", undefined, "boot"],
  [boot, "running", "running", "answer", "VmBooted"],
  [boot, "running", "gone", "boot"],
  [boot, "stopped", "stopped", "boot"],
  [boot, "failed", undefined, "boot"],
  [boot, "destroyed", undefined, "boot"],
  [cmd("ResumeVm"), "absent", undefined, "answer", "VmBootFailed"],
  [cmd("ResumeVm"), "destroyed", undefined, "answer", "VmBootFailed"],
  [cmd("ResumeVm"), "stopped", "stopped", "boot"],
  [cmd("ResumeVm"), "lost", "gone", "boot"],
  [cmd("ResumeVm"), "running", "running", "answer", "VmBooted"],
  [cmd("RebootVm"), "running", "running", "boot"],
  [cmd("RebootVm"), "stopped", "stopped", "boot"],
  [cmd("RebootVm"), "absent", undefined, "answer", "VmBootFailed"],
  [cmd("ShutDownVm"), "running", "running", "stop"],
  [cmd("ShutDownVm"), "stopped", "stopped", "answer", "VmShutDown"],
  [cmd("ShutDownVm"), "lost", "gone", "answer", "VmShutDown"],
  [cmd("ShutDownVm"), "absent", undefined, "answer", "VmShutdownFailed"],
  [cmd("DestroyVm"), "running", "running", "destroy"],
  [cmd("DestroyVm"), "lost", "gone", "destroy"],
  [cmd("DestroyVm"), "absent", undefined, "answer", "VmDestroyed"],
  [cmd("DestroyVm"), "destroyed", undefined, "answer", "VmDestroyed"],
];

describe("what the agent does with a command", () => {
  it.each(table)("%o on a VM %s (driver says %s) is %s %s", (command, status, live, kind, answer) => {
    const step = plan(command, status === "absent" ? undefined : held(status), live, ctx);
    expect(step.kind).toBe(kind);
    if (answer) expect(step.kind === "answer" && step.answer.type).toBe(answer);
  });

  it("a repeated boot of a running VM answers with the boot time it had", () => {
    const step = plan(boot, held("running"), "running", ctx);
    expect(step).toEqual({
      kind: "answer",
      answer: { type: "VmBooted", data: { vmId, hostId: "h1", driver: "fake", bootMs: 42 } },
    });
  });

  it("a boot clears what an earlier boot left, and a reboot of a running VM stops it gracefully first", () => {
    expect(plan(boot, held("stopped"), "stopped", ctx)).toMatchObject({
      kind: "boot",
      clear: instance,
      graceful: false,
    });
    expect(plan(cmd("RebootVm"), held("running"), "running", ctx)).toMatchObject({
      clear: instance,
      graceful: true,
    });
  });

  it("a resume boots the spec the VM was first booted with", () => {
    expect(plan(cmd("ResumeVm"), held("stopped"), "stopped", ctx)).toMatchObject({ kind: "boot", spec });
  });

  it("a shutdown of a VM recorded as running whose process is gone records it stopped", () => {
    expect(plan(cmd("ShutDownVm"), held("running"), "gone", ctx)).toMatchObject({
      kind: "answer",
      status: "stopped",
    });
  });
});

describe("what a restart makes of the VMs in the store", () => {
  it.each([
    ["running", "running", { status: "running", lost: false, clear: false }],
    ["running", "gone", { status: "lost", lost: true, clear: false }],
    ["running", "stopped", { status: "stopped", lost: false, clear: false }],
    ["booting", "running", { status: "failed", lost: false, clear: true }],
    ["stopped", "stopped", { status: "stopped", lost: false, clear: false }],
    ["lost", "gone", { status: "lost", lost: false, clear: false }],
  ] as const)("a VM recorded %s that the driver finds %s", (status, live, expected) => {
    expect(afterRestart(held(status), live)).toEqual(expected);
  });
});
