import { describe, expect, it } from "vitest";
import { isRefusal, refuse } from "../src/domain/refusal.ts";

describe("a refusal", () => {
  it("carries its code, its reason and the issues a client should fix (none unless given)", () => {
    expect(refuse("not_found", "pool p does not exist")).toEqual({
      refused: true,
      code: "not_found",
      reason: "pool p does not exist",
      issues: [],
    });
    const issues = [{ field: "name", message: "taken" }] as const;
    expect(refuse("conflict", "name: taken", issues)).toEqual({
      refused: true,
      code: "conflict",
      reason: "name: taken",
      issues,
    });
  });

  it.each<[string, unknown, boolean]>([
    ["a refusal", refuse("invalid", "no"), true],
    ["events", [{ type: "PoolDeleted", data: { poolId: "p" } }], false],
    ["no events", [], false],
    ["null", null, false],
    ["undefined", undefined, false],
    ["a string", "refused", false],
    ["an object refused in name only", { refused: "yes" }, false],
    ["an object not refused", { refused: false }, false],
  ])("is told apart: %s → %s", (_, value, expected) => {
    expect(isRefusal(value)).toBe(expected);
  });
});
