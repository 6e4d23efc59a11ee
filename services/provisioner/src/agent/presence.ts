import { setTimeout as delay } from "node:timers/promises";
import { announce, type Publisher } from "@mikrom/bus";
import {
  type DriverName,
  HOST_CONTEXT,
  HostHeartbeat,
  HostRegistered,
  HostStopped,
  type Names,
} from "@mikrom/contracts";
import { createLogger, errorFields } from "@mikrom/telemetry";
import type { NatsConnection } from "@nats-io/transport-node";

const log = createLogger("mikrom.provisioner.presence");

export interface HostInfo {
  readonly hostId: string;
  readonly driver: DriverName;
  readonly vcpus: number;
  readonly memoryMb: number;
}

/** How long one publish may wait for JetStream's ack before it is tried again. */
const ATTEMPT_TIMEOUT_MS = 5_000;
/** How long the count of running VMs may take (the database may be away): the last count is sent instead. */
const COUNT_TIMEOUT_MS = 1_000;

/**
 * The host's presence on `<ns>.evt.host.<hostId>.<Type>`: HostRegistered at start and again after
 * every reconnect to NATS (a server that restarted may have lost it, and a receiver that judged the
 * host silent hears it is back), HostStopped on a graceful stop; and HostHeartbeat every interval on
 * `<ns>.beat.<hostId>`, core NATS (the next one supersedes it, so no stream keeps it).
 * Published directly, not through the outbox: they are news about now. An announcement that cannot
 * go out is tried again until it does or the next one supersedes it; every failure is logged.
 * Beats are paced by the process's monotonic timers: nothing here reads the host's clock except to
 * stamp the messages (receivers judge liveness by when a message arrives, on their own clock).
 */
export class HostPresence {
  readonly #publisher: Publisher;
  readonly #nc: NatsConnection;
  readonly #names: Names;
  readonly #info: HostInfo;
  readonly #runningVms: () => Promise<number>;
  readonly #intervalMs: number;
  /** The agent's start, the same in every announcement: a re-announcement is not a restart. */
  readonly #startedAt = new Date().toISOString();
  readonly #stop = new AbortController();
  #lastCount = 0;
  #announcing: AbortController | undefined;
  readonly #inFlight = new Set<Promise<void>>();
  #loops: Promise<unknown> | undefined;

  constructor(options: {
    publisher: Publisher;
    nc: NatsConnection;
    names: Names;
    info: HostInfo;
    /** The VMs running here, for the heartbeat (from the host's database). */
    runningVms: () => Promise<number>;
    intervalMs: number;
  }) {
    this.#publisher = options.publisher;
    this.#nc = options.nc;
    this.#names = options.names;
    this.#info = options.info;
    this.#runningVms = options.runningVms;
    this.#intervalMs = options.intervalMs;
  }

  #subject(type: string): string {
    return this.#names.event(HOST_CONTEXT, this.#info.hostId, type);
  }

  /** One announcement (the publisher retries a server that is restarting); at start, until it goes out. */
  async register(options: { timeoutMs?: number; retryForMs?: number } = {}): Promise<void> {
    const { hostId, driver, vcpus, memoryMb } = this.#info;
    await this.#publisher.send(
      HostRegistered,
      this.#subject(HostRegistered.type),
      { hostId, driver, vcpus, memoryMb, startedAt: this.#startedAt },
      options,
    );
    log.info({ host_id: hostId, driver, vcpus, memory_mb: memoryMb }, "host registered");
  }

  /** Starts the heartbeat (the first beat one interval after start) and the re-announcements. */
  start(): void {
    this.#loops ??= Promise.all([this.#beatLoop(), this.#reconnects()]);
  }

  async #beatLoop(): Promise<void> {
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      await delay(this.#intervalMs, undefined, { signal }).catch(() => {});
      if (signal.aborted) return;
      this.#track(this.beat());
    }
  }

  /** After every reconnect, the host announces itself again, until it goes out or the next reconnect. */
  async #reconnects(): Promise<void> {
    for await (const status of this.#nc.status()) {
      if (this.#stop.signal.aborted) return;
      if (status.type !== "reconnect") continue;
      this.#announcing?.abort();
      const announce = new AbortController();
      this.#announcing = announce;
      this.#track(this.#announce(announce.signal));
    }
  }

  #track(work: Promise<void>): void {
    this.#inFlight.add(work);
    void work.finally(() => this.#inFlight.delete(work));
  }

  async #announce(signal: AbortSignal): Promise<void> {
    await this.#untilSent("the host's announcement", signal, () =>
      this.register({ timeoutMs: ATTEMPT_TIMEOUT_MS, retryForMs: 0 }),
    );
  }

  /** One heartbeat, with the VMs running here (a connection that is closed is logged, not retried: the next beat is due). */
  async beat(): Promise<void> {
    const runningVms = await this.#count();
    try {
      announce(this.#nc, HostHeartbeat, this.#names.heartbeat(this.#info.hostId), {
        hostId: this.#info.hostId,
        at: new Date().toISOString(),
        runningVms,
      });
    } catch (error) {
      log.warn(errorFields(error), "the heartbeat did not go out");
    }
  }

  /** The running VMs now, or the last count when the database does not answer in time. */
  async #count(): Promise<number> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), Math.min(COUNT_TIMEOUT_MS, this.#intervalMs));
    });
    try {
      const counted = await Promise.race([this.#runningVms(), late]);
      if (counted === undefined) {
        log.warn(
          { running_vms: this.#lastCount },
          "counting the running VMs took too long; the last count is sent",
        );
        return this.#lastCount;
      }
      this.#lastCount = counted;
      return counted;
    } catch (error) {
      log.warn(
        { running_vms: this.#lastCount, ...errorFields(error) },
        "could not count the running VMs; the last count is sent",
      );
      return this.#lastCount;
    } finally {
      clearTimeout(timer);
    }
  }

  async #untilSent(what: string, signal: AbortSignal, send: () => Promise<unknown>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await send();
        if (attempt > 1) log.info({ attempts: attempt }, `${what} went out after ${attempt} attempts`);
        return;
      } catch (error) {
        if (signal.aborted) {
          log.warn({ attempts: attempt, ...errorFields(error) }, `${what} did not go out; superseded`);
          return;
        }
        const fields = { attempt, ...errorFields(error) };
        if (attempt === 1) log.warn(fields, `${what} failed; trying again`);
        else log.debug(fields, `${what} failed again; trying again`);
        await delay(Math.min(250 * attempt, 2_000), undefined, { signal }).catch(() => {});
        if (signal.aborted) {
          log.warn({ attempts: attempt }, `${what} did not go out; superseded`);
          return;
        }
      }
    }
  }

  /** Ends the heartbeat and the announcements, and says the host stopped (best effort: NATS may be gone). */
  async stop(): Promise<void> {
    this.#stop.abort();
    this.#announcing?.abort();
    await Promise.all([...this.#inFlight]);
    try {
      await this.#publisher.send(
        HostStopped,
        this.#subject(HostStopped.type),
        { hostId: this.#info.hostId, at: new Date().toISOString() },
        { retryForMs: 2_000 },
      );
    } catch (error) {
      log.warn(errorFields(error), "could not announce the host's stop");
    }
  }
}
