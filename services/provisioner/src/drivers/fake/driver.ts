import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { createLogger } from "@mikrom/telemetry";
import { readTail } from "../console-log.ts";
import {
  type AdoptResult,
  type BootOptions,
  BootSpec,
  DEFAULT_CONSOLE_BYTES,
  type Driver,
  Instance,
  type InstanceStatus,
} from "../driver.ts";
import { BootFailed, BootTimeout, InvalidInstance } from "../errors.ts";

const log = createLogger("mikrom.provisioner.driver.fake");

export interface FakeDriverOptions {
  /** Folder for the fake VMs' state and consoles: VMs survive a driver (agent) restart. */
  runDir: string;
  /** Boot latency in ms: a number, or [min, max] drawn uniformly. Default 0. */
  bootLatencyMs?: number | readonly [number, number];
  stopLatencyMs?: number;
  /** Fraction of boots that fail (0..1). */
  failureRate?: number;
  /** Of the failing boots, the fraction that time out rather than fail outright. Default 0. */
  timeoutShare?: number;
  /** Source of randomness in [0, 1); inject a seeded one for reproducible runs. */
  random?: () => number;
}

type FakeState = "running" | "stopped";

/** The VM's record in its folder, as the process drivers keep instance.json: `find` reads it. */
const RECORD = "instance.json";

/**
 * No hypervisor: VMs are files with a state, for load and failure tests of everything above the
 * driver. Boots take the configured latency and fail at the configured rate; `crash` makes a VM
 * vanish as a dead hypervisor process would. Like the process drivers, a boot writes the VM's
 * record when it "spawns" (calling `onSpawned`) and again, with `bootMs`, once the VM runs; the
 * latency is the agent's own timer, so a boot whose agent died never completes (it is `gone`).
 */
export class FakeDriver implements Driver {
  readonly name = "fake" as const;
  readonly #options: FakeDriverOptions;
  readonly #random: () => number;
  #boots = 0;

  constructor(options: FakeDriverOptions) {
    this.#options = options;
    this.#random = options.random ?? Math.random;
  }

  /** Boots started by this driver (a VM that runs is never booted twice: tests count on it). */
  get boots(): number {
    return this.#boots;
  }

  async boot(input: BootSpec, options: BootOptions = {}): Promise<Instance> {
    const parsed = BootSpec.safeParse(input);
    if (!parsed.success) throw new BootFailed("prepare", `invalid boot spec: ${parsed.error.message}`);
    const spec = parsed.data;
    const dir = join(this.#options.runDir, spec.vmId);
    if ((await this.#state(dir)) === "running")
      throw new BootFailed("prepare", `VM ${spec.vmId} already runs`);
    this.#boots++;
    await rm(join(dir, "state"), { force: true });
    await mkdir(dir, { recursive: true });
    const started = Date.now();
    // Durations from the monotonic clock: a wall clock set back during a boot must not make it negative.
    const startedMono = performance.now();
    const consoleLog = join(dir, "console.log");
    await writeFile(consoleLog, `fake: booting ${spec.vmId}\n`);
    const spawned: Instance = {
      vmId: spec.vmId,
      driver: "fake",
      consoleLog,
      runDir: dir,
      ipAddress: spec.ipAddress,
      prefixLength: spec.prefixLength,
      ...(spec.tap ? { tap: spec.tap } : {}),
      startedAt: new Date(started).toISOString(),
    };

    const latency = this.#latency();
    try {
      await writeFile(join(dir, RECORD), JSON.stringify(spawned));
      await options.onSpawned?.(spawned);
      await delay(latency, undefined, options.signal ? { signal: options.signal } : {});
    } catch (error) {
      await rm(dir, { recursive: true, force: true });
      throw options.signal?.aborted ? options.signal.reason : error;
    }
    const failureRate = this.#options.failureRate ?? 0;
    if (failureRate > 0 && this.#random() < failureRate) {
      await rm(dir, { recursive: true, force: true });
      if (this.#random() < (this.#options.timeoutShare ?? 0)) {
        throw new BootTimeout("readiness", latency, "fake: injected timeout");
      }
      throw new BootFailed("readiness", "injected failure", "fake: injected failure");
    }
    await writeFile(consoleLog, `MIKROM-READY vm=${spec.vmId} ip=${spec.ipAddress}/${spec.prefixLength}\n`, {
      flag: "a",
    });
    const instance: Instance = { ...spawned, bootMs: Math.round(performance.now() - startedMono) };
    await writeFile(join(dir, RECORD), JSON.stringify(instance));
    await writeFile(join(dir, "state"), "running");
    log.debug({ vm_id: spec.vmId, boot_ms: instance.bootMs }, "fake VM running");
    return instance;
  }

  async stop(instance: Instance): Promise<void> {
    const vm = this.#own(instance);
    if ((await this.#state(vm.runDir)) !== "running") return;
    await delay(this.#options.stopLatencyMs ?? 0);
    await writeFile(join(vm.runDir, "state"), "stopped");
  }

  async destroy(instance: Instance): Promise<void> {
    await rm(this.#own(instance).runDir, { recursive: true, force: true });
  }

  async status(instance: Instance): Promise<InstanceStatus> {
    return (await this.#state(this.#own(instance).runDir)) ?? "gone";
  }

  async adopt(record: unknown): Promise<AdoptResult> {
    const parsed = Instance.safeParse(record);
    if (!parsed.success) throw new InvalidInstance(`not an instance record: ${parsed.error.message}`);
    const instance = this.#own(parsed.data);
    return { status: await this.status(instance), instance };
  }

  async find(vmId: string): Promise<AdoptResult | undefined> {
    const text = await readFile(join(this.#options.runDir, vmId, RECORD), "utf8").catch(() => undefined);
    if (text === undefined) return undefined;
    let record: unknown;
    try {
      record = JSON.parse(text);
    } catch {
      return undefined;
    }
    const parsed = Instance.safeParse(record);
    if (!parsed.success || parsed.data.driver !== "fake" || parsed.data.vmId !== vmId) return undefined;
    return { status: await this.status(parsed.data), instance: parsed.data };
  }

  async console(instance: Instance, maxBytes = DEFAULT_CONSOLE_BYTES): Promise<string> {
    return readTail(this.#own(instance).consoleLog, maxBytes);
  }

  /** Test hook: the VM dies as if its hypervisor process were killed. */
  async crash(instance: Instance): Promise<void> {
    await rm(join(this.#own(instance).runDir, "state"), { force: true });
  }

  async close(): Promise<void> {}

  #latency(): number {
    const latency = this.#options.bootLatencyMs ?? 0;
    if (typeof latency === "number") return latency;
    const [min, max] = latency;
    return min + this.#random() * (max - min);
  }

  async #state(dir: string): Promise<FakeState | undefined> {
    const text = await readFile(join(dir, "state"), "utf8").catch(() => undefined);
    return text === "running" || text === "stopped" ? text : undefined;
  }

  #own(instance: Instance): Instance {
    if (instance.driver !== "fake") {
      throw new InvalidInstance(`instance ${instance.vmId} belongs to the ${instance.driver} driver`);
    }
    return instance;
  }
}
