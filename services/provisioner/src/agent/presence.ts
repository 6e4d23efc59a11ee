import { setTimeout as delay } from "node:timers/promises";
import type { Publisher } from "@mikrom/bus";
import {
  type DriverName,
  HOST_CONTEXT,
  HostHeartbeat,
  HostRegistered,
  HostStopped,
  type Names,
} from "@mikrom/contracts";
import { createLogger, errorFields } from "@mikrom/telemetry";
import type { Agent } from "./agent.ts";

const log = createLogger("mikrom.provisioner.presence");

export interface HostInfo {
  readonly hostId: string;
  readonly driver: DriverName;
  readonly vcpus: number;
  readonly memoryMb: number;
}

/**
 * The host's presence on `<ns>.evt.host.<hostId>.<Type>`: HostRegistered at start, HostHeartbeat
 * every interval (after the watch has looked for lost VMs, so `runningVms` is current), HostStopped
 * on a graceful stop. Published directly, not through the outbox: they are news about now, and a
 * heartbeat stored for later would be a lie (vm-service's heartbeat timeout covers one that is lost).
 */
export class HostPresence {
  readonly #publisher: Publisher;
  readonly #names: Names;
  readonly #info: HostInfo;
  readonly #agent: Agent;
  readonly #intervalMs: number;
  readonly #stop = new AbortController();
  #loop: Promise<void> | undefined;

  constructor(options: {
    publisher: Publisher;
    names: Names;
    info: HostInfo;
    agent: Agent;
    intervalMs: number;
  }) {
    this.#publisher = options.publisher;
    this.#names = options.names;
    this.#info = options.info;
    this.#agent = options.agent;
    this.#intervalMs = options.intervalMs;
  }

  #subject(type: string): string {
    return this.#names.event(HOST_CONTEXT, this.#info.hostId, type);
  }

  async register(): Promise<void> {
    const { hostId, driver, vcpus, memoryMb } = this.#info;
    await this.#publisher.send(HostRegistered, this.#subject(HostRegistered.type), {
      hostId,
      driver,
      vcpus,
      memoryMb,
      startedAt: new Date().toISOString(),
    });
    log.info({ host_id: hostId, driver, vcpus, memory_mb: memoryMb }, "host registered");
  }

  /** Starts the heartbeat loop; the first beat goes one interval after start. */
  start(): void {
    this.#loop ??= this.#run();
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      await delay(this.#intervalMs, undefined, { signal }).catch(() => {});
      if (signal.aborted) return;
      await this.beat().catch((error: unknown) => log.warn(errorFields(error), "heartbeat failed"));
    }
  }

  /** One heartbeat: look for lost VMs, then say how many run. */
  async beat(): Promise<void> {
    await this.#agent.findLost();
    const runningVms = await this.#agent.runningVms();
    await this.#publisher.send(
      HostHeartbeat,
      this.#subject(HostHeartbeat.type),
      { hostId: this.#info.hostId, at: new Date().toISOString(), runningVms },
      // A beat that cannot go out within its interval is superseded by the next one.
      { retryForMs: this.#intervalMs },
    );
  }

  /** Ends the heartbeat and says the host stopped (best effort: NATS may be gone). */
  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
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
