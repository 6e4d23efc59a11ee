import type { DriverName } from "@mikrom/contracts";
import { createLogger, errorFields } from "@mikrom/telemetry";
import type { Answer, Found, HeldVm, Operation, Step } from "../domain/plan.ts";
import type { Driver, Instance } from "../drivers/driver.ts";
import { BootFailed, BootTimeout } from "../drivers/errors.ts";
import { type AgentStore, vmStream } from "../store/event-store.ts";
import { markVm, type VmChange } from "../store/instances.ts";
import { recordBoot } from "./metrics.ts";

const log = createLogger("mikrom.provisioner.agent");

/** How much of the console a boot failure's reason carries (vm-service shows it as the VM's error). */
const REASON_CONSOLE_CHARS = 400;

/** What a step did: the row to write (none for a VM this host does not hold) and the answer. */
export interface Outcome {
  readonly change?: VmChange;
  readonly answer: Answer;
}

/**
 * The driver calls behind the agent's steps. Before a call that may end or replace the VM's process,
 * the row records the command under way (and a boot records `booting` before anything is cleared),
 * so that an agent that dies in the middle leaves a row its successor reads right: a boot cut short,
 * or a process ended on purpose, never a VM lost.
 */
export class DriverActions {
  readonly #store: AgentStore;
  readonly #driver: Driver;
  readonly #hostId: string;

  constructor(options: { store: AgentStore; driver: Driver; hostId: string }) {
    this.#store = options.store;
    this.#driver = options.driver;
    this.#hostId = options.hostId;
  }

  get #driverName(): DriverName {
    return this.#driver.name;
  }

  /**
   * What the driver has for the VM: the record in its run folder (which knows of a boot the store
   * never recorded), else the stored record re-attached; undefined when there is nothing.
   */
  async look(vmId: string, held: HeldVm | undefined): Promise<Found | undefined> {
    const found = await this.#driver.find(vmId);
    if (found || !held?.instance) return found;
    try {
      return await this.#driver.adopt(held.instance);
    } catch (error) {
      log.warn({ vm_id: vmId, ...errorFields(error) }, "the stored record is not the driver's; ignored");
      return undefined;
    }
  }

  /** Runs a step through the driver; a throw means "retry later" (the store is away, a destroy failed). */
  execute(step: Step, vmId: string, held: HeldVm | undefined, operation: Operation): Promise<Outcome> {
    switch (step.kind) {
      case "answer": {
        // A row the step leaves as it was is written anyway: it carries the stream's version.
        const change =
          step.change ?? (held && { status: held.status, spec: held.spec, instance: held.instance ?? null });
        return Promise.resolve({ answer: step.answer, ...(change ? { change: { vmId, ...change } } : {}) });
      }
      case "boot":
        return this.#boot(step, held, operation);
      case "stop":
        return this.#stop(step.instance, held!, operation);
      case "destroy":
        return this.#destroy(vmId, step.instance, held, operation);
    }
  }

  /** The row marked with the command under way (`version` is the stream's, for a row not yet there). */
  #mark(change: VmChange, version: number): Promise<void> {
    return markVm(this.#store.db, this.#driverName, change, version);
  }

  async #stop(instance: Instance, held: HeldVm, operation: Operation): Promise<Outcome> {
    const { vmId, spec } = held;
    const hostId = this.#hostId;
    await this.#mark({ vmId, status: held.status, spec, instance, operation }, held.version);
    try {
      await this.#driver.stop(instance);
      return {
        change: { vmId, status: "stopped", spec, instance },
        answer: { type: "VmShutDown", data: { vmId, hostId } },
      };
    } catch (error) {
      log.error(errorFields(error), "stopping the VM failed");
      return {
        change: { vmId, status: held.status, spec, instance },
        answer: { type: "VmShutdownFailed", data: { vmId, hostId, reason: messageOf(error) } },
      };
    }
  }

  async #destroy(
    vmId: string,
    instance: Instance | undefined,
    held: HeldVm | undefined,
    operation: Operation,
  ): Promise<Outcome> {
    const here = held && held.status !== "destroyed";
    if (here)
      await this.#mark(
        { vmId, status: held.status, spec: held.spec, instance: instance ?? null, operation },
        held.version,
      );
    // No answer for a destroy that failed: the throw has the command retried, then dead-lettered.
    if (instance) await this.#driver.destroy(instance);
    return {
      ...(held ? { change: { vmId, status: "destroyed" as const, spec: held.spec, instance: null } } : {}),
      answer: { type: "VmDestroyed", data: { vmId, hostId: this.#hostId } },
    };
  }

  async #boot(
    step: Extract<Step, { kind: "boot" }>,
    held: HeldVm | undefined,
    operation: Operation,
  ): Promise<Outcome> {
    const { spec } = step;
    const vmId = spec.vmId;
    const hostId = this.#hostId;
    const driver = this.#driverName;
    const version = held?.version ?? (await this.#store.readStream(vmStream(vmId))).version;
    const booting = (instance: Instance | null): Promise<void> =>
      this.#mark({ vmId, status: "booting", spec, instance, operation }, version);
    // Before anything is cleared: an agent that dies from here on leaves a boot cut short, not a VM
    // lost. The store being away is not a boot failure: the throw has the command retried.
    await booting(step.clear ?? null);
    let storeFailure: unknown;
    let bootStarted: number | undefined;
    try {
      if (step.clear) {
        // What an earlier boot left (a stopped or lost VM, or the running one of a reboot) goes first.
        if (step.graceful) await this.#driver.stop(step.clear);
        await this.#driver.destroy(step.clear);
      }
      bootStarted = performance.now();
      const instance = await this.#driver.boot(spec, {
        onSpawned: async (spawned) => {
          await booting(spawned).catch((error: unknown) => {
            storeFailure = error;
            throw error;
          });
        },
      });
      recordBoot(driver, (performance.now() - bootStarted) / 1000);
      log.info({ pid: instance.pid, boot_ms: instance.bootMs, ip: spec.ipAddress }, "VM booted");
      return {
        change: { vmId, status: "running", spec, instance },
        answer: { type: "VmBooted", data: { vmId, hostId, driver, bootMs: instance.bootMs ?? 0 } },
      };
    } catch (error) {
      // The driver tore the half-booted VM down; the redelivered command boots afresh.
      if (storeFailure !== undefined) throw storeFailure;
      const failure = bootFailure(error);
      // Only the driver's boot is timed; a failure clearing an earlier boot's leftovers is not one.
      if (bootStarted !== undefined) {
        recordBoot(driver, (performance.now() - bootStarted) / 1000, failure.step);
      }
      log.warn({ ...errorFields(error), boot_step: failure.step }, "boot failed");
      return {
        change: { vmId, status: "failed", spec, instance: null },
        answer: { type: "VmBootFailed", data: { vmId, hostId, ...failure } },
      };
    }
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** VmBootFailed's step and reason: the driver's step, its message, and the end of the console. */
function bootFailure(error: unknown): { step: string; reason: string } {
  if (error instanceof BootFailed || error instanceof BootTimeout) {
    const tail = error.consoleTail.trim().slice(-REASON_CONSOLE_CHARS);
    return { step: error.step, reason: tail ? `${error.message}; console: ${tail}` : error.message };
  }
  return { step: "agent", reason: messageOf(error) };
}
