import { decode } from "@mikrom/bus";
import { HostHeartbeat, Registry } from "@mikrom/contracts";
import { createLogger, errorFields } from "@mikrom/telemetry";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import type { HandlerDeps } from "./context.ts";
import { type Beat, placeWaitingVms, recordHeartbeats } from "./host-registry.ts";

const log = createLogger("mikrom.vm-service.heartbeats");
const registry = new Registry([HostHeartbeat]);
/** How long heartbeats gather before they are written: 100 hosts beating every 10 s make two a window. */
const WINDOW_MS = 200;

/**
 * Gathers heartbeats for a short window and writes each window's in one go: a statement per window,
 * not a transaction per beat, however many hosts beat. A beat's arrival time is taken when it
 * arrives, and the sweeper writes what is pending before it judges a host silent.
 */
export class HeartbeatBatch {
  readonly #write: (beats: readonly Beat[]) => Promise<void>;
  readonly #windowMs: number;
  /** The newest beat of each host not yet written. */
  #pending = new Map<string, Beat>();
  #timer: NodeJS.Timeout | undefined;
  #writing: Promise<void> = Promise.resolve();
  #failing = false;

  constructor(write: (beats: readonly Beat[]) => Promise<void>, windowMs: number) {
    this.#write = write;
    this.#windowMs = windowMs;
  }

  add(beat: Beat): void {
    const seen = this.#pending.get(beat.hostId);
    if (!seen || seen.arrivedAt <= beat.arrivedAt) this.#pending.set(beat.hostId, beat);
    this.#timer ??= setTimeout(() => void this.flush(), this.#windowMs);
  }

  /** Writes what is pending; what cannot be written now (the database is away) waits for the next window. */
  flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#writing = this.#writing.then(() => this.#writePending());
    return this.#writing;
  }

  async #writePending(): Promise<void> {
    if (this.#pending.size === 0) return;
    const beats = [...this.#pending.values()];
    this.#pending = new Map();
    try {
      await this.#write(beats);
      if (this.#failing) log.info({ heartbeats: beats.length }, "heartbeats are written again");
      this.#failing = false;
    } catch (error) {
      // Kept for the next window, unless a newer beat of the same host came meanwhile.
      for (const beat of beats) if (!this.#pending.has(beat.hostId)) this.#pending.set(beat.hostId, beat);
      if (!this.#failing)
        log.warn(
          { heartbeats: beats.length, ...errorFields(error) },
          "writing heartbeats failed; trying again",
        );
      this.#failing = true;
      this.#timer ??= setTimeout(() => void this.flush(), this.#windowMs);
    }
  }

  stop(): Promise<void> {
    return this.flush();
  }
}

/**
 * Runs `work` again after each call, but never twice at once: calls while it runs make one more run
 * after it, however many they are.
 */
function coalescing(work: () => Promise<void>): { nudge(): void; idle(): Promise<void> } {
  let running: Promise<void> | undefined;
  let again = false;
  return {
    nudge() {
      if (running) {
        again = true;
        return;
      }
      running = (async () => {
        do {
          again = false;
          await work();
        } while (again);
      })().finally(() => {
        running = undefined;
      });
    },
    idle: () => running ?? Promise.resolve(),
  };
}

/**
 * Hears every host's heartbeat on `<ns>.beat.*` (core NATS, one replica each: a queue group) and
 * batches them. A beat believed is one whose subject, which NATS lets only that host's user publish
 * to, names the host it speaks for; anything else is logged and dropped (no stream keeps a beat to
 * dead-letter, and the next one supersedes it).
 */
export function listenHeartbeats(
  deps: HandlerDeps,
  nc: NatsConnection,
): { flush(): Promise<void>; stop(): Promise<void> } {
  // The VMs waiting for a host get a look after each window, on their own: placements (each under
  // the scheduling lock) must never hold up the next window's heartbeats.
  let heard = "";
  const placing = coalescing(() =>
    placeWaitingVms(deps, heard).catch((error: unknown) =>
      log.warn(
        errorFields(error),
        "placing the VMs waiting for a host failed; the next heartbeat tries again",
      ),
    ),
  );
  const batch = new HeartbeatBatch(
    async (beats) => {
      await recordHeartbeats(deps, beats);
      heard = beats[0]!.hostId;
      placing.nudge();
    },
    Math.min(WINDOW_MS, deps.config.hostHeartbeatTimeoutMs / 20),
  );
  const subscription: Subscription = nc.subscribe(deps.names.allHeartbeats, {
    queue: "vm-service",
    callback: (error, msg) => {
      if (error) return;
      const arrivedAt = new Date(deps.now());
      try {
        const beat = decode(
          {
            subject: msg.subject,
            data: msg.data,
            headers: msg.headers,
            stream: "",
            streamSequence: 0,
            deliveryCount: 1,
          },
          registry,
        );
        const hostId = beat.data.hostId;
        if (msg.subject !== deps.names.heartbeat(hostId))
          throw new Error(`a heartbeat of host ${hostId} on ${msg.subject}, another host's subject`);
        batch.add({ hostId, arrivedAt, sentAt: new Date(beat.data.at), runningVms: beat.data.runningVms });
      } catch (reason) {
        log.warn({ subject: msg.subject, ...errorFields(reason) }, "heartbeat dropped");
      }
    },
  });
  return {
    flush: () => batch.flush(),
    async stop() {
      subscription.unsubscribe();
      await batch.stop();
      await placing.idle();
    },
  };
}
