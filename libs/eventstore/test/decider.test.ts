import { describe, expect, it } from "vitest";
import { eventsOf, fold, isRefusal, refuse } from "../src/decider.ts";
import { type Tally, type TallyCommand, tally } from "./fixtures/tally.ts";

describe("refusals", () => {
  it("are plain values with the code their CommandRejected carries and a reason", () => {
    expect(refuse("conflict", "VM is not running")).toEqual({
      kind: "refusal",
      code: "conflict",
      reason: "VM is not running",
    });
  });

  it("are told apart from a list of events", () => {
    expect(isRefusal(refuse("conflict", "invalid"))).toBe(true);
    expect(isRefusal([])).toBe(false);
    expect(isRefusal([{ type: "X", data: {} }])).toBe(false);
    expect(isRefusal(null)).toBe(false);
    expect(isRefusal({ reason: "no" })).toBe(false);
    // Only a plain value: a function that happens to say it is one is not.
    expect(isRefusal(Object.assign(() => {}, { kind: "refusal" }))).toBe(false);
    expect(isRefusal("refusal")).toBe(false);
  });
});

describe("a decision's events", () => {
  const events = [{ type: "TallyClosed", data: { tallyId: "t" } }];
  it("are the list itself, or the events of a decision that asks for more", () => {
    expect(eventsOf(events)).toBe(events);
    const withCommands = { events, commands: ["x"] };
    expect(eventsOf(withCommands)).toBe(events);
    expect(eventsOf({ events: [] })).toEqual([]);
  });
});

describe("a decider (the tests' tally)", () => {
  const open: Tally = { status: "open", total: 3 };
  const closed: Tally = { status: "closed", total: 3 };
  const none = tally.initialState;
  const cases: [string, Tally, TallyCommand, unknown][] = [
    [
      "opens a new tally",
      none,
      { type: "Open", tallyId: "t", name: "n" },
      [{ type: "TallyOpened", data: { tallyId: "t", name: "n" } }],
    ],
    [
      "refuses to open it twice",
      open,
      { type: "Open", tallyId: "t", name: "n" },
      refuse("conflict", "tally t already exists"),
    ],
    [
      "adds to an open tally",
      open,
      { type: "Add", tallyId: "t", by: 2 },
      [{ type: "TallyIncremented", data: { tallyId: "t", by: 2, note: null } }],
    ],
    [
      "refuses to add to a closed tally",
      closed,
      { type: "Add", tallyId: "t", by: 2 },
      refuse("conflict", "tally t is closed"),
    ],
    [
      "refuses to close a tally that does not exist",
      none,
      { type: "Close", tallyId: "t" },
      refuse("conflict", "tally t is none"),
    ],
  ];
  it.each(cases)("%s", (_, state, command, expected) => {
    expect(tally.decide(command, state)).toEqual(expected);
  });

  it("folds its events into state", () => {
    const state = fold(tally, [
      { type: "TallyOpened", data: { tallyId: "t", name: "n" } },
      { type: "TallyIncremented", data: { tallyId: "t", by: 2, note: null } },
      { type: "TallyIncremented", data: { tallyId: "t", by: 5, note: "x" } },
      { type: "TallyClosed", data: { tallyId: "t" } },
    ]);
    expect(state).toEqual({ status: "closed", total: 7 });
  });

  it("folds from a given state, not the initial one, when it has one", () => {
    const more = fold(tally, [{ type: "TallyIncremented", data: { tallyId: "t", by: 2, note: null } }], {
      status: "open",
      total: 3,
    });
    expect(more).toEqual({ status: "open", total: 5 });
  });
});
