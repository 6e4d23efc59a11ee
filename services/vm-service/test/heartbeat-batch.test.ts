import { describe, expect, test } from "vitest";
import { HeartbeatBatch } from "../src/handlers/heartbeats.ts";
import type { Beat } from "../src/handlers/host-registry.ts";

const beat = (hostId: string, arrivedMs: number): Beat => ({
  hostId,
  arrivedAt: new Date(arrivedMs),
  sentAt: new Date(arrivedMs),
  runningVms: 0,
});

describe("HeartbeatBatch", () => {
  test("writes a window's beats together, each host's newest once", async () => {
    const written: Beat[][] = [];
    const batch = new HeartbeatBatch(async (beats) => {
      written.push([...beats]);
    }, 60_000);
    batch.add(beat("a", 1));
    batch.add(beat("b", 2));
    batch.add(beat("a", 3));
    // A beat that arrived earlier than the one held (reordered) does not replace it.
    batch.add(beat("b", 1));
    await batch.flush();
    expect(written).toEqual([[beat("a", 3), beat("b", 2)]]);
    await batch.flush();
    expect(written).toHaveLength(1);
  });

  test("writes on its own once the window has passed", async () => {
    const written: Beat[][] = [];
    const batch = new HeartbeatBatch(async (beats) => {
      written.push([...beats]);
    }, 20);
    batch.add(beat("a", 1));
    await expect.poll(() => written).toEqual([[beat("a", 1)]]);
  });

  test("keeps what it could not write (the database is away) for the next window; a newer beat supersedes it", async () => {
    const written: Beat[][] = [];
    let away = true;
    const batch = new HeartbeatBatch(async (beats) => {
      if (away) throw new Error("connection refused");
      written.push([...beats]);
    }, 60_000);
    batch.add(beat("a", 1));
    batch.add(beat("b", 1));
    await batch.flush();
    expect(written).toEqual([]);
    batch.add(beat("b", 5));
    away = false;
    await batch.stop();
    expect(written).toEqual([[beat("a", 1), beat("b", 5)]]);
  });
});
