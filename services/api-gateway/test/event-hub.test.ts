import { describe, expect, it } from "vitest";
import type { EventFeed, FeedEvent } from "../src/backend.ts";
import { EventHub, type EventReader } from "../src/event-hub.ts";

/** An append-only log read the way JetStream's ordered consumers read the events stream. */
class Log {
  readonly events: FeedEvent[] = [];
  readonly #readers = new Set<() => void>();
  opened = 0;
  open = 0;

  append(n = 1, messageId?: string): void {
    for (let i = 0; i < n; i++) {
      const seq = this.events.length + 1;
      const event = { seq, subject: `e.${seq}`, type: "T", entityId: "vm", data: {}, time: "" };
      this.events.push(messageId ? { ...event, messageId } : event);
    }
    for (const wake of this.#readers) wake();
  }

  async reader(after?: number): Promise<EventReader> {
    this.opened++;
    this.open++;
    const start = after ?? this.events.length;
    let stopped = false;
    let wake: (() => void) | undefined;
    const notify = (): void => wake?.();
    this.#readers.add(notify);
    const log = this;
    async function* read(): AsyncGenerator<FeedEvent> {
      for (let next = start; !stopped; ) {
        if (next < log.events.length) {
          yield log.events[next++]!;
          continue;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
    }
    const iterator = read();
    return {
      start,
      pending: this.events.length - start,
      stop: async () => {
        if (stopped) return;
        stopped = true;
        this.open--;
        this.#readers.delete(notify);
        notify();
      },
      [Symbol.asyncIterator]: () => iterator,
    };
  }
}

/** The next n events' sequences, leaving the feed open (a `for await` that breaks would end it). */
async function take(feed: EventFeed, n: number): Promise<number[]> {
  const iterator = feed[Symbol.asyncIterator]();
  const seqs: number[] = [];
  while (seqs.length < n) {
    const next = await iterator.next();
    if (next.done) break;
    seqs.push(next.value.seq);
  }
  return seqs;
}

describe("EventHub", () => {
  it("serves every stream from one reader, and stops it with the last stream", async () => {
    const log = new Log();
    const hub = new EventHub((after) => log.reader(after));
    const feeds = await Promise.all(Array.from({ length: 10 }, () => hub.feed()));
    expect(log.opened).toBe(1);
    log.append(3);
    for (const feed of feeds) expect(await take(feed, 3)).toEqual([1, 2, 3]);
    for (const feed of feeds) await feed.stop();
    expect(log.open).toBe(0);
    expect(hub.clients).toBe(0);
  });

  it("a stream resuming behind the shared reader reads the gap itself, then the shared events, each once", async () => {
    const log = new Log();
    const hub = new EventHub((after) => log.reader(after));
    const keeper = await hub.feed();
    log.append(5);
    expect(await take(keeper, 5)).toEqual([1, 2, 3, 4, 5]);
    const resumed = await hub.feed(2);
    expect(log.open).toBe(2);
    log.append(2);
    expect(await take(resumed, 5)).toEqual([3, 4, 5, 6, 7]);
    // Its own reader is gone once it caught up.
    expect(log.open).toBe(1);
    await Promise.all([keeper.stop(), resumed.stop()]);
    expect(log.open).toBe(0);
  });

  it("resuming with nothing missed opens no reader of its own", async () => {
    const log = new Log();
    const hub = new EventHub((after) => log.reader(after));
    const keeper = await hub.feed();
    log.append(2);
    await take(keeper, 2);
    const current = await hub.feed(2);
    expect(log.opened).toBe(1);
    log.append();
    expect(await take(current, 1)).toEqual([3]);
    await Promise.all([keeper.stop(), current.stop()]);
  });

  it("a stream that falls a mailbox behind is ended, and the others are not held back", async () => {
    const log = new Log();
    const hub = new EventHub((after) => log.reader(after), { mailbox: 4 });
    const slow = await hub.feed();
    const fast = await hub.feed();
    const seen: number[] = [];
    for (let i = 0; i < 6; i++) {
      log.append();
      seen.push(...(await take(fast, 1)));
    }
    expect(seen).toEqual([1, 2, 3, 4, 5, 6]);
    // The slow one gets what its mailbox held, then its end: its client resumes from 4.
    const held: number[] = [];
    for await (const event of slow) held.push(event.seq);
    expect(held).toEqual([1, 2, 3, 4]);
    expect(hub.clients).toBe(1);
    await fast.stop();
    await slow.stop();
    expect(log.open).toBe(0);
  });

  it("shows an event sent again once, when its first copy came through the gap and its second through the shared reader", async () => {
    const log = new Log();
    log.append(1);
    log.append(1, "event-x");
    const hub = new EventHub((after) => log.reader(after));
    const keeper = await hub.feed();
    const resumed = await hub.feed(1);
    log.append(1, "event-x");
    log.append(1);
    expect(await take(resumed, 2)).toEqual([2, 4]);
    await Promise.all([keeper.stop(), resumed.stop()]);
  });
});
