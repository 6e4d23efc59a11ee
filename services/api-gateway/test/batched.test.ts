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

  it("a failed batch fails each of its calls, and the next batch runs", async () => {
    let fail = true;
    const run = batched(async (xs: readonly number[]) => {
      if (fail) throw new Error("database away");
      return xs;
    });
    const failed = await Promise.allSettled([run(1), run(2)]);
    expect(failed.map((r) => r.status)).toEqual(["rejected", "rejected"]);
    fail = false;
    expect(await run(3)).toBe(3);
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
