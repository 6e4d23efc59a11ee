import { describe, expect, it } from "vitest";
import { endedOperations, type TimedEvent } from "../src/domain/operations.ts";
import type { VmEventType } from "../src/domain/vm.ts";

/** Events one second apart, from t = 0. */
function timeline(...types: VmEventType[]): TimedEvent[] {
  return types.map((type, i) => ({ type, recordedAt: new Date(Date.UTC(2026, 0, 1, 0, 0, i)) }));
}

describe("operation timing", () => {
  it("times create from VmCreated to VmRunning, across the events in between", () => {
    const [created, provisioning, running] = timeline("VmCreated", "VmProvisioning", "VmRunning");
    expect(endedOperations([created!, provisioning!], [running!])).toEqual([
      { operation: "create", outcome: "success", seconds: 2 },
    ]);
  });

  it("ends stop at VmStopped, start and restart at VmRunning, delete at VmDeleted", () => {
    const all = timeline(
      "VmCreated",
      "VmRunning",
      "VmStopRequested",
      "VmStopped",
      "VmStartRequested",
      "VmProvisioning",
      "VmRunning",
      "VmRestartRequested",
      "VmRunning",
      "VmDeleteRequested",
      "VmDeleted",
    );
    expect(endedOperations([], all)).toEqual([
      { operation: "create", outcome: "success", seconds: 1 },
      { operation: "stop", outcome: "success", seconds: 1 },
      { operation: "start", outcome: "success", seconds: 2 },
      { operation: "restart", outcome: "success", seconds: 1 },
      { operation: "delete", outcome: "success", seconds: 1 },
    ]);
  });

  it("ends the running operation as a failure at VmFailed, and a delete asked meanwhile supersedes it", () => {
    const [created, failed, startAsked, deleteAsked, deleted] = timeline(
      "VmCreated",
      "VmFailed",
      "VmStartRequested",
      "VmDeleteRequested",
      "VmDeleted",
    );
    expect(endedOperations([created!], [failed!])).toEqual([
      { operation: "create", outcome: "failure", seconds: 1 },
    ]);
    expect(endedOperations([created!, failed!, startAsked!], [deleteAsked!, deleted!])).toEqual([
      { operation: "start", outcome: "superseded", seconds: 1 },
      { operation: "delete", outcome: "success", seconds: 1 },
    ]);
  });

  it("counts nothing for events that end no operation (an update, news of a VM already settled)", () => {
    const [created, running, updated, runningAgain] = timeline(
      "VmCreated",
      "VmRunning",
      "VmUpdated",
      "VmRunning",
    );
    expect(endedOperations([created!, running!], [updated!, runningAgain!])).toEqual([]);
  });

  it("counts an end recorded before its start (the clock stepped back) as 0 seconds, never less", () => {
    const [created, running] = timeline("VmCreated", "VmRunning");
    const earlier = { ...running!, recordedAt: new Date(created!.recordedAt.getTime() - 5000) };
    expect(endedOperations([created!], [earlier])).toEqual([
      { operation: "create", outcome: "success", seconds: 0 },
    ]);
  });

  it("ends only the operation an event completes: a VmRunning does not end a stop, nor a VmFailed nothing", () => {
    const [stopAsked, runningAgain, stopped] = timeline("VmStopRequested", "VmRunning", "VmStopped");
    expect(endedOperations([stopAsked!], [runningAgain!])).toEqual([]);
    expect(endedOperations([stopAsked!, runningAgain!], [stopped!])).toEqual([
      { operation: "stop", outcome: "success", seconds: 2 },
    ]);
    const [failed] = timeline("VmFailed");
    expect(endedOperations([], [failed!])).toEqual([]);
  });

  it("ends nothing twice: after a success, a repeat of its end event counts nothing", () => {
    const [created, running, runningAgain] = timeline("VmCreated", "VmRunning", "VmRunning");
    expect(endedOperations([created!], [running!, runningAgain!])).toEqual([
      { operation: "create", outcome: "success", seconds: 1 },
    ]);
  });
});
