import { createLogger, detached, errorFields } from "@mikrom/telemetry";
import type { EventFeed, FeedEvent } from "./backend.ts";

const log = createLogger("mikrom.api-gateway.events");

/** A read of the events stream, in sequence order. */
export interface EventReader extends AsyncIterable<FeedEvent> {
  /** The stream sequence it starts after: every matching event past it will be yielded. */
  readonly start: number;
  /** Matching events already stored when it was opened. */
  readonly pending: number;
  stop(): Promise<void>;
}

/** Opens a reader after a stream sequence, or from now. */
export type OpenReader = (afterSequence?: number) => Promise<EventReader>;

/** A stream's events waiting to be written to its client; past the bound, the client is let go. */
class Mailbox {
  readonly #events: FeedEvent[] = [];
  #wake: (() => void) | undefined;
  #ended = false;
  readonly #bound: number;

  constructor(bound: number) {
    this.#bound = bound;
  }

  /** False when the client has fallen `bound` events behind: it is ended and resumes by Last-Event-ID. */
  put(event: FeedEvent): boolean {
    if (this.#ended) return true;
    if (this.#events.length >= this.#bound) {
      this.end();
      return false;
    }
    this.#events.push(event);
    this.#wake?.();
    return true;
  }

  end(): void {
    this.#ended = true;
    this.#wake?.();
  }

  async take(): Promise<FeedEvent | undefined> {
    while (this.#events.length === 0) {
      if (this.#ended) return undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
      this.#wake = undefined;
    }
    return this.#events.shift();
  }
}

/**
 * Every event stream of a gateway reads one JetStream consumer, whatever the number of clients:
 * a client costs its connection and a bounded mailbox, not a consumer of its own. The reader runs
 * while one stream is open. A client resuming from Last-Event-ID reads the gap with a reader of
 * its own up to where the shared one stood when it joined, then continues from its mailbox, so it
 * sees every event once, in order. A client that falls `mailbox` events behind is ended: its
 * EventSource reconnects with Last-Event-ID and loses nothing.
 */
export class EventHub {
  readonly #open: OpenReader;
  readonly #mailbox: number;
  readonly #clients = new Set<Mailbox>();
  #live: Promise<EventReader> | undefined;
  /** The stream sequence the shared reader has reached (every event up to it went to the mailboxes). */
  #position = 0;

  constructor(open: OpenReader, options: { mailbox?: number } = {}) {
    this.#open = open;
    this.#mailbox = options.mailbox ?? 1024;
  }

  async feed(afterSequence?: number): Promise<EventFeed> {
    const mailbox = new Mailbox(this.#mailbox);
    this.#clients.add(mailbox);
    let replay: EventReader | undefined;
    let joined = 0;
    try {
      await this.#startLive();
      // Everything past `joined` reaches the mailbox; up to it, only a reader of its own can tell.
      joined = this.#position;
      if (afterSequence !== undefined && afterSequence < joined) {
        replay = await this.#open(afterSequence);
        if (replay.pending === 0) {
          await replay.stop();
          replay = undefined;
        }
      }
    } catch (error) {
      await replay?.stop();
      this.#leave(mailbox);
      throw error;
    }
    let stopped = false;
    const stop = async (): Promise<void> => {
      if (stopped) return;
      stopped = true;
      mailbox.end();
      this.#leave(mailbox);
      await replay?.stop();
    };
    async function* events(): AsyncGenerator<FeedEvent> {
      let last = afterSequence ?? 0;
      // An event sent again may be stored once before `joined` and once after: shown once.
      const replayed = new Set<string>();
      if (replay) {
        for await (const event of replay) {
          if (event.messageId) replayed.add(event.messageId);
          if (event.seq > last) {
            last = event.seq;
            yield event;
          }
          if (event.seq >= joined) break;
        }
        await replay.stop();
      }
      for (let event = await mailbox.take(); event; event = await mailbox.take()) {
        if (event.seq <= last || (event.messageId && replayed.has(event.messageId))) continue;
        last = event.seq;
        yield event;
      }
    }
    const iterator = events();
    return { stop, [Symbol.asyncIterator]: () => iterator };
  }

  /** Streams open now. */
  get clients(): number {
    return this.#clients.size;
  }

  #startLive(): Promise<EventReader> {
    if (this.#live) return this.#live;
    // The reader serves every client: it runs, and logs, as none of them.
    const live: Promise<EventReader> = detached(() => this.#open()).then(
      (reader) => {
        this.#position = reader.start;
        void detached(() => this.#pump(reader));
        return reader;
      },
      (error: unknown) => {
        if (this.#live === live) this.#live = undefined;
        throw error;
      },
    );
    this.#live = live;
    return live;
  }

  async #pump(reader: EventReader): Promise<void> {
    try {
      for await (const event of reader) {
        if (event.seq <= this.#position) continue;
        this.#position = event.seq;
        for (const mailbox of this.#clients) {
          if (!mailbox.put(event)) {
            this.#leave(mailbox);
            log.warn({ seq: event.seq, bound: this.#mailbox }, "An event stream fell behind: ended it");
          }
        }
      }
    } catch (error) {
      log.warn(errorFields(error), "The events reader failed: ending its streams");
    }
    // A reader that ended while it was still the shared one leaves its clients without events:
    // they end, and reconnect with Last-Event-ID to a new one.
    const current = this.#live;
    if (current && (await current.catch(() => undefined)) === reader) {
      this.#live = undefined;
      for (const mailbox of this.#clients) mailbox.end();
      this.#clients.clear();
    }
    // Stopped already when its last stream left; otherwise its consumer is deleted now.
    await reader.stop().catch(() => undefined);
  }

  #leave(mailbox: Mailbox): void {
    this.#clients.delete(mailbox);
    if (this.#clients.size > 0 || !this.#live) return;
    const live = this.#live;
    this.#live = undefined;
    void live.then((reader) => reader.stop()).catch(() => undefined);
  }
}
