import { describe, expect, it } from "vitest";
import { fold, isRefusal, refuse } from "../src/decider.ts";
import { type Tally, type TallyCommand, tally } from "./fixtures/tally.ts";

describe("refusals", () => {
  it("are plain values with a reason and an optional code (no code key at all when none is given)", () => {
    expect(refuse("VM is not running")).toStrictEqual({ kind: "refusal", reason: "VM is not running" });
    expect(refuse("VM is not running", "not-running")).toStrictEqual({
      kind: "refusal",
      reason: "VM is not running",
      code: "not-running",
    });
  });

  it("are frozen: a refusal once made is not changed", () => {
    expect(Object.isFrozen(refuse("no"))).toBe(true);
    expect(Object.isFrozen(refuse("no", "code"))).toBe(true);
  });

  it.each<[string, unknown, boolean]>([
    ["a refusal", refuse("no"), true],
    ["a refusal with a code", refuse("no", "c"), true],
    ["no events", [], false],
    ["a list of events", [{ type: "X", data: {} }], false],
    ["a list that calls itself a refusal", Object.assign([], { kind: "refusal" }), false],
    ["null", null, false],
    ["undefined", undefined, false],
    ["a string", "refusal", false],
    ["a function that calls itself a refusal", Object.assign(() => [], { kind: "refusal" }), false],
    ["an object with a reason but no kind", { reason: "no" }, false],
    ["an object of another kind", { kind: "event", reason: "no" }, false],
  ])("are told apart: %s → %s", (_, value, expected) => {
    expect(isRefusal(value)).toBe(expected);
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
      refuse("tally t already exists", "exists"),
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
      refuse("tally t is closed", "not-open"),
    ],
    [
      "refuses to close a tally that does not exist",
      none,
      { type: "Close", tallyId: "t" },
      refuse("tally t is none", "not-open"),
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

  it("folds from a state given, in place of the initial one", () => {
    const from: Tally = { status: "open", total: 10 };
    expect(
      fold(tally, [{ type: "TallyIncremented", data: { tallyId: "t", by: 2, note: null } }], from),
    ).toEqual({
      status: "open",
      total: 12,
    });
    expect(fold(tally, [], from)).toBe(from);
    expect(fold(tally, [])).toBe(tally.initialState);
  });
});
