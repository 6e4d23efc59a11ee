import { describe, expect, it } from "vitest";
import { batched } from "../src/batched.ts";

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
    const run = batched(
      async (xs: readonly number[]) => {
        statements++;
        if (away)
          throw Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });
        return xs;
      },
      { failsAll: (error) => (error as { code?: string }).code === "ECONNREFUSED" },
    );
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

  it("with a limit of two, two batches go out at once and the calls made meanwhile wait for one", async () => {
    const batches: number[][] = [];
    const gates: Array<() => void> = [];
    const run = batched(
      async (xs: readonly number[]) => {
        batches.push([...xs]);
        await new Promise<void>((resolve) => gates.push(resolve));
        return xs;
      },
      { limit: 2 },
    );
    const turn = () => new Promise((resolve) => setImmediate(resolve));
    const calls = [run(1)];
    await turn();
    calls.push(run(2));
    await turn();
    calls.push(run(3), run(4));
    await turn();
    expect(batches).toEqual([[1], [2]]);
    gates.shift()!();
    await calls[0];
    await turn();
    expect(batches).toEqual([[1], [2], [3, 4]]);
    for (const open of gates.splice(0)) open();
    expect(await Promise.all(calls)).toEqual([1, 2, 3, 4]);
  });

  it("calls with the same key never share a batch", async () => {
    const batches: string[][] = [];
    const run = batched(
      async (xs: readonly string[]) => {
        batches.push([...xs]);
        return xs;
      },
      { key: (x) => x.split(":")[0]! },
    );
    await Promise.all([run("a:1"), run("b:1"), run("a:2"), run("c:1")]);
    expect(batches).toEqual([["a:1", "b:1", "c:1"], ["a:2"]]);
  });
});
