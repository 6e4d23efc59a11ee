import { describe, expect, it } from "vitest";
import { batched } from "../src/store/batched.ts";

describe("batched", () => {
  it("calls made in one turn run as one batch, answered in order", async () => {
    const batches: number[][] = [];
    const double = batched(async (xs: readonly number[]) => {
      batches.push([...xs]);
      return xs.map((x) => x * 2);
    });
    expect(await Promise.all([double(1), double(2), double(3)])).toEqual([2, 4, 6]);
    expect(batches).toEqual([[1, 2, 3]]);
  });

  it("calls made while a batch is out wait for it and go together in the next", async () => {
    const batches: number[][] = [];
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const echo = batched(async (xs: readonly number[]) => {
      batches.push([...xs]);
      if (batches.length === 1) await gate;
      return xs;
    });
    const first = echo(1);
    await new Promise((resolve) => setImmediate(resolve));
    const later = [echo(2), echo(3)];
    await new Promise((resolve) => setImmediate(resolve));
    expect(batches).toEqual([[1]]);
    release();
    expect(await Promise.all([first, ...later])).toEqual([1, 2, 3]);
    expect(batches).toEqual([[1], [2, 3]]);
  });

  it("a failed batch is run again call by call: the input refused fails alone", async () => {
    const batches: number[][] = [];
    const run = batched(async (xs: readonly number[]) => {
      batches.push([...xs]);
      if (xs.includes(2)) throw new Error("refused: 2");
      return xs;
    });
    const settled = await Promise.allSettled([run(1), run(2), run(3)]);
    expect(settled).toEqual([
      { status: "fulfilled", value: 1 },
      { status: "rejected", reason: new Error("refused: 2") },
      { status: "fulfilled", value: 3 },
    ]);
    expect(batches).toEqual([[1, 2, 3], [1], [2], [3]]);
  });

  it("a batch that failed because the database is away fails every call at once, and the next batch runs", async () => {
    let away = true;
    let statements = 0;
    const run = batched(async (xs: readonly number[]) => {
      statements++;
      if (away)
        throw Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });
      return xs;
    });
    const failed = await Promise.allSettled([run(1), run(2), run(3)]);
    expect(failed.map((r) => r.status)).toEqual(["rejected", "rejected", "rejected"]);
    expect(statements).toBe(1);
    away = false;
    expect(await run(4)).toBe(4);
  });

  it("more calls than one statement should carry are split into batches", async () => {
    const sizes: number[] = [];
    const run = batched(async (xs: readonly number[]) => {
      sizes.push(xs.length);
      return xs;
    });
    await Promise.all(Array.from({ length: 600 }, (_, i) => run(i)));
    expect(sizes).toEqual([256, 256, 88]);
  });
});
