import { event, ValidationFailed } from "@mikrom/contracts";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { EventCatalog, upcaster } from "../src/catalog.ts";
import { UnreadableEvent } from "../src/errors.ts";

// v1 { name }, v2 { first, last }, v3 { first, last, title }
const PersonRenamed = event(
  "PersonRenamed",
  3,
  z.object({ first: z.string(), last: z.string(), title: z.string().nullable() }),
);
const upcasters = [
  upcaster(PersonRenamed, 1, (d: { name: string }) => {
    const [first = "", last = ""] = d.name.split(" ");
    return { first, last };
  }),
  upcaster(PersonRenamed, 2, (d: { first: string; last: string }) => ({ ...d, title: null })),
];
const catalog = new EventCatalog([PersonRenamed], upcasters);

describe("the event catalog", () => {
  it("upcasts an old version step by step to the current one", () => {
    expect(catalog.decode("PersonRenamed", 1, { name: "Ada Lovelace" })).toEqual({
      type: "PersonRenamed",
      data: { first: "Ada", last: "Lovelace", title: null },
    });
    expect(catalog.decode("PersonRenamed", 2, { first: "A", last: "L" }).data).toEqual({
      first: "A",
      last: "L",
      title: null,
    });
  });

  it("validates what an upcaster produced", () => {
    const broken = new EventCatalog([PersonRenamed], [upcasters[0]!, upcaster(PersonRenamed, 2, () => ({}))]);
    expect(() => broken.decode("PersonRenamed", 2, { first: "A", last: "L" })).toThrow(ValidationFailed);
  });

  it("reports a version with no upcaster, a version from the future and an unknown type", () => {
    const partial = new EventCatalog([PersonRenamed], [upcasters[1]!]);
    expect(() => partial.decode("PersonRenamed", 1, { name: "A" })).toThrow(UnreadableEvent);
    expect(() => catalog.decode("PersonRenamed", 4, {})).toThrow(/knows versions up to 3/);
    expect(() => catalog.decode("PersonMoved", 1, {})).toThrow(UnreadableEvent);
  });

  it("stamps new events with the current version after validating them", () => {
    expect(catalog.encode({ type: "PersonRenamed", data: { first: "A", last: "L", title: "Dr" } })).toEqual({
      type: "PersonRenamed",
      schemaVersion: 3,
      data: { first: "A", last: "L", title: "Dr" },
    });
    expect(() => catalog.encode({ type: "PersonRenamed", data: { first: "A" } })).toThrow(ValidationFailed);
  });

  it("refuses upcasters that cannot form a chain", () => {
    expect(() => upcaster(PersonRenamed, 3, (d) => d)).toThrow(/below its current version/);
    expect(() => new EventCatalog([PersonRenamed], [upcasters[0]!, upcasters[0]!])).toThrow(/two upcasters/);
    expect(() => new EventCatalog([], [upcasters[0]!])).toThrow(/not one of this store's events/);
  });
});
