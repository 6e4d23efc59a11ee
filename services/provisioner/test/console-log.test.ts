import { appendFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { followLines, readTail, trimConsole } from "../src/drivers/console-log.ts";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "mikrom-console-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("the console file", () => {
  it("reads as its last bytes, and as empty when missing", async () => {
    const path = join(dir, "console.log");
    expect(await readTail(path, 10)).toBe("");
    await writeFile(path, "0123456789abcdef");
    expect(await readTail(path, 6)).toBe("abcdef");
    expect(await readTail(path, 100)).toBe("0123456789abcdef");
  });

  it("is cut to its last half, at a line start, once past its bound, and appends continue after", async () => {
    const path = join(dir, "console.log");
    const lines = Array.from({ length: 100 }, (_, i) => `line ${String(i).padStart(3, "0")}\n`).join("");
    await writeFile(path, lines);
    expect(await trimConsole(path, 400)).toBe(true);
    const kept = await readFile(path, "utf8");
    expect(kept.length).toBeLessThanOrEqual(200);
    expect(kept.startsWith("line ")).toBe(true);
    expect(kept.endsWith("line 099\n")).toBe(true);
    await appendFile(path, "after\n");
    expect((await readFile(path, "utf8")).endsWith("line 099\nafter\n")).toBe(true);
    expect(await trimConsole(path, 400)).toBe(false);
  });
});

describe("following the console", () => {
  it("finds a line written after it started", async () => {
    const path = join(dir, "console.log");
    const found = followLines(path, {
      match: (line) => (line.startsWith("READY") ? line : undefined),
      timeoutMs: 5000,
      alive: async () => true,
    });
    await writeFile(path, "booting\n");
    await appendFile(path, "READY now\n");
    expect(await found).toEqual({ kind: "match", value: "READY now" });
  });

  it("ends when the writer dies without the line", async () => {
    const path = join(dir, "console.log");
    await writeFile(path, "kernel panic\n");
    const outcome = await followLines(path, {
      match: () => undefined,
      timeoutMs: 5000,
      alive: async () => false,
    });
    expect(outcome).toEqual({ kind: "exited" });
  });

  it("still finds the line a writer printed just before it died", async () => {
    const path = join(dir, "console.log");
    await writeFile(path, "READY\n");
    const outcome = await followLines(path, {
      match: (line) => (line === "READY" ? true : undefined),
      timeoutMs: 5000,
      alive: async () => false,
    });
    expect(outcome.kind).toBe("match");
  });

  it("gives up at its deadline", async () => {
    const outcome = await followLines(join(dir, "never"), {
      match: () => undefined,
      timeoutMs: 50,
      alive: async () => true,
    });
    expect(outcome).toEqual({ kind: "timeout" });
  });

  it("stops when aborted", async () => {
    const controller = new AbortController();
    controller.abort(new Error("agent stopping"));
    const outcome = await followLines(join(dir, "never"), {
      match: () => undefined,
      timeoutMs: 5000,
      alive: async () => true,
      signal: controller.signal,
    });
    expect(outcome.kind).toBe("aborted");
  });
});
