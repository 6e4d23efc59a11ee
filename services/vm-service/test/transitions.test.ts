import { isRefusal } from "@mikrom/eventstore/decider";
import { describe, expect, it } from "vitest";
import type { ProcessInput } from "../src/domain/lifecycle.ts";
import { react } from "../src/domain/lifecycle.ts";
import { plan } from "../src/domain/outgoing.ts";
import {
  evolve,
  type Lifecycle,
  type Step,
  transitions,
  type Vm,
  type VmEvent,
  type VmEventType,
} from "../src/domain/vm.ts";
import {
  allocationFailed,
  booted,
  bootFailed,
  commands,
  ctx,
  deadline,
  destroyed,
  histories,
  hostAvailable,
  hostLost,
  ipAllocated,
  ipReleased,
  lost,
  noHosts,
  restartedFromError,
  shutDown,
  shutdownFailed,
  vmIn,
  waitingPending,
  waitingStarting,
} from "./fixtures.ts";

/**
 * The transition table held to the code in both directions. One way: every event the decider or the
 * lifecycle emits leaves from a status its row names. The other: every status a row names is one some
 * command or answer emits it from, so a `from` list widened (or narrowed) without the code fails here:
 * from every other status, the command is refused and the answer ignored.
 */
const vms: readonly Vm[] = [
  ...Object.keys(histories).map((s) => vmIn(s as Lifecycle)),
  waitingPending,
  waitingStarting,
  restartedFromError,
];
const steps: readonly Step[] = ["allocate", "schedule", "boot", "start", "stop", "restart", "delete"];
const answers: readonly ProcessInput[] = [
  ipAllocated,
  allocationFailed,
  ipReleased,
  booted(),
  booted("host-b"),
  bootFailed(),
  shutDown(),
  shutdownFailed(),
  destroyed(),
  lost(),
  hostLost(),
  hostAvailable,
  ...steps.map(deadline),
];

/** For each event, the statuses it was emitted from, and any event emitted from a status its row does not name. */
function observe(): { from: Record<VmEventType, Lifecycle[]>; outside: string[] } {
  const from = Object.fromEntries(Object.keys(transitions).map((t) => [t, [] as Lifecycle[]])) as Record<
    VmEventType,
    Lifecycle[]
  >;
  const outside: string[] = [];
  const record = (vm: Vm, events: readonly VmEvent[], cause: string): void => {
    let state = vm;
    for (const event of events) {
      if (!from[event.type].includes(state.status)) from[event.type].push(state.status);
      if (!transitions[event.type].from.includes(state.status))
        outside.push(`${event.type} from ${state.status} (${cause})`);
      state = evolve(state, event);
    }
  };
  for (const vm of vms) {
    for (const command of Object.values(commands)) {
      const cmd = command();
      const decided = plan(cmd, vm, { userVmCount: 0, maxVmsPerUser: 10 });
      if (!isRefusal(decided)) record(vm, decided.events, cmd.type);
    }
    for (const answer of answers)
      for (const c of [ctx, noHosts]) record(vm, react(answer, vm, c).events, answer.type);
  }
  return { from, outside };
}

const observed = observe();

describe("the transition table", () => {
  it("is never left: no event is emitted from a status its row does not name", () => {
    expect(observed.outside).toEqual([]);
  });

  it.each(Object.keys(transitions) as VmEventType[])(
    "%s is emitted from every status its row names, and only from those",
    (type) => {
      expect([...observed.from[type]].sort()).toEqual([...transitions[type].from].sort());
    },
  );
});
