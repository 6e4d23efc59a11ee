import type { DriverName } from "@mikrom/contracts";
import type { MetadataInput } from "@mikrom/eventstore";
import { createLogger, errorFields, withContext, withSpan } from "@mikrom/telemetry";
import type { Driver, Instance, InstanceStatus } from "../drivers/driver.ts";
import { BootFailed, BootTimeout } from "../drivers/errors.ts";
import { tapNameFor } from "../drivers/network.ts";
import type { AgentStore, ProvisionerEvent } from "../store/event-store.ts";
import { vmStream } from "../store/event-store.ts";
import { countRunning, listHeld, loadVm, recordVm, type VmChange } from "../store/instances.ts";
import { type AgentCommand, type Answer, afterRestart, type HeldVm, plan, type Step } from "./plan.ts";

export type { AgentCommand };

import { recordBoot } from "./metrics.ts";
import { VmLocks } from "./vm-locks.ts";

const log = createLogger("mikrom.provisioner.agent");

/** Span names per command; the earlier system's `vm.start_firecracker`-style steps are the driver's logs. */
const SPAN: Readonly<Record<AgentCommand["type"], string>> = {
  BootVm: "provisioner.boot",
  ResumeVm: "provisioner.resume",
  RebootVm: "provisioner.reboot",
  ShutDownVm: "provisioner.stop",
  DestroyVm: "provisioner.destroy",
};

/** How much of the console a boot failure's reason carries (vm-service shows it as the VM's error). */
const REASON_CONSOLE_CHARS = 400;

export interface CommandMeta {
  /** The command's message id: the inbox key and the answer's causation id. */
  readonly messageId: string;
  readonly correlationId?: string | undefined;
}

export interface AgentOptions {
  readonly store: AgentStore;
  readonly driver: Driver;
  readonly hostId: string;
  /** The inbox key of the command consumer (its durable name). */
  readonly consumer: string;
  /** The driver creates each VM's tap on a bridge (MIKROM_BRIDGE): give every boot its tap name. */
  readonly withTaps?: boolean;
}

export interface ReconcileReport {
  readonly adopted: string[];
  readonly lost: string[];
  /** Boots cut short by the agent's own end, whose leftovers were removed. */
  readonly cleaned: string[];
}

export interface ConsoleView {
  readonly status: Exclude<HeldVm["status"], "destroyed">;
  readonly output: string;
}

/**
 * The host agent's work: commands to driver calls and answers, the reconcile at start, and the
 * watch that finds VMs whose process ended. The instances table is the state; every fact is
 * appended with the state change that explains it, and the outbox relay publishes it.
 */
export class Agent {
  readonly hostId: string;
  readonly driverName: DriverName;
  readonly #store: AgentStore;
  readonly #driver: Driver;
  readonly #consumer: string;
  readonly #locks = new VmLocks();
  readonly #withTaps: boolean;

  constructor(options: AgentOptions) {
    this.#withTaps = options.withTaps ?? false;
    this.#store = options.store;
    this.#driver = options.driver;
    this.hostId = options.hostId;
    this.driverName = options.driver.name;
    this.#consumer = options.consumer;
  }

  #attributes(vmId: string): Record<string, string> {
    return { "provisioner.driver": this.driverName, "vm.id": vmId, "host.id": this.hostId };
  }

  /** Handles one command; resolves once its answer is recorded. A throw means "retry later". */
  handle(command: AgentCommand, meta: CommandMeta): Promise<void> {
    const vmId = command.data.vmId;
    return withContext({ vm_id: vmId, action: command.type }, () =>
      withSpan(
        SPAN[command.type],
        { ...this.#attributes(vmId), "messaging.message.id": meta.messageId },
        () => this.#locks.run(vmId, () => this.#handle(command, meta)),
      ),
    );
  }

  async #handle(command: AgentCommand, meta: CommandMeta): Promise<void> {
    const vmId = command.data.vmId;
    const started = performance.now();
    if (await this.#store.inboxHas(this.#consumer, meta.messageId)) {
      // Redelivered after its answer was recorded (the ack was lost): acting again could undo a later command.
      log.info({ message_id: meta.messageId }, `${command.type} already handled, skipped`);
      return;
    }
    const held = await loadVm(this.#store.db, vmId);
    const live = held?.instance ? await this.#status(held.instance) : undefined;
    const step = plan(command, held, live, { hostId: this.hostId, driver: this.driverName });
    const { change, answer } = await this.#execute(step, held);

    const metadata: MetadataInput = {
      correlationId: meta.correlationId ?? meta.messageId,
      causationId: meta.messageId,
    };
    const once = await this.#store.handleOnce(this.#consumer, meta.messageId, async (session) => {
      if (change) return recordVm(session, this.driverName, change, [answer], metadata);
      // A VM this host never held (or a refusal): the answer goes into its history, no row.
      const { version } = await session.readStream(vmStream(vmId));
      await session.append(vmStream(vmId), [answer], { expectedVersion: version, metadata });
      return undefined;
    });
    const fields = {
      message_id: meta.messageId,
      step: step.kind,
      answer: answer.type,
      duration_ms: Math.round(performance.now() - started),
    };
    if (once.duplicate) log.info(fields, `${command.type} was answered meanwhile; not answered again`);
    else if (answer.type === "VmBootFailed" || answer.type === "VmShutdownFailed")
      log.warn({ ...fields, reason: answer.data.reason }, `${command.type}: ${answer.type}`);
    else log.info(fields, `${command.type}: ${answer.type}`);
  }

  async #execute(step: Step, held: HeldVm | undefined): Promise<{ change?: VmChange; answer: Answer }> {
    const hostId = this.hostId;
    switch (step.kind) {
      case "answer": {
        if (!held) return { answer: step.answer };
        return {
          answer: step.answer,
          change: {
            vmId: held.vmId,
            status: step.status ?? held.status,
            spec: held.spec,
            instance: held.instance ?? null,
          },
        };
      }
      case "boot":
        return this.#boot(step);
      case "stop": {
        const vmId = step.instance.vmId;
        try {
          await this.#driver.stop(step.instance);
          return {
            change: { vmId, status: "stopped", spec: held!.spec, instance: step.instance },
            answer: { type: "VmShutDown", data: { vmId, hostId } },
          };
        } catch (error) {
          log.error(errorFields(error), "stopping the VM failed");
          return {
            change: { vmId, status: held!.status, spec: held!.spec, instance: step.instance },
            answer: { type: "VmShutdownFailed", data: { vmId, hostId, reason: messageOf(error) } },
          };
        }
      }
      case "destroy": {
        const vmId = held!.vmId;
        // No answer for a destroy that failed: the throw has the command retried, then dead-lettered.
        if (step.instance) await this.#driver.destroy(step.instance);
        return {
          change: { vmId, status: "destroyed", spec: held!.spec, instance: null },
          answer: { type: "VmDestroyed", data: { vmId, hostId } },
        };
      }
    }
  }

  async #boot(step: Extract<Step, { kind: "boot" }>): Promise<{ change: VmChange; answer: Answer }> {
    const spec =
      this.#withTaps && !step.spec.tap ? { ...step.spec, tap: tapNameFor(step.spec.vmId) } : step.spec;
    const vmId = spec.vmId;
    const hostId = this.hostId;
    const booting = (instance: Instance | null): Promise<HeldVm> =>
      this.#store.transaction((session) =>
        recordVm(session, this.driverName, { vmId, status: "booting", spec, instance }, []),
      );
    let bootStarted: number | undefined;
    try {
      if (step.clear) {
        // What an earlier boot left (a stopped or lost VM, or the running one of a reboot) goes first.
        if (step.graceful) await this.#driver.stop(step.clear);
        await this.#driver.destroy(step.clear);
      }
      await booting(null);
      bootStarted = performance.now();
      const instance = await this.#driver.boot(spec, {
        onSpawned: async (spawned) => void (await booting(spawned)),
      });
      recordBoot(this.driverName, (performance.now() - bootStarted) / 1000);
      log.info({ pid: instance.pid, boot_ms: instance.bootMs, ip: spec.ipAddress }, "VM booted");
      return {
        change: { vmId, status: "running", spec, instance },
        answer: {
          type: "VmBooted",
          data: { vmId, hostId, driver: this.driverName, bootMs: instance.bootMs ?? 0 },
        },
      };
    } catch (error) {
      const failure = bootFailure(error);
      // Only the driver's boot is timed; a failure clearing an earlier boot's leftovers is not one.
      if (bootStarted !== undefined) {
        recordBoot(this.driverName, (performance.now() - bootStarted) / 1000, failure.step);
      }
      log.warn({ ...errorFields(error), boot_step: failure.step }, "boot failed");
      return {
        change: { vmId, status: "failed", spec, instance: null },
        answer: { type: "VmBootFailed", data: { vmId, hostId, ...failure } },
      };
    }
  }

  /** The driver's status of a record; a record it cannot read counts as gone. */
  async #status(instance: Instance): Promise<InstanceStatus> {
    try {
      return await this.#driver.status(instance);
    } catch (error) {
      log.warn({ vm_id: instance.vmId, ...errorFields(error) }, "could not read the VM's status");
      return "gone";
    }
  }

  /**
   * At start: every VM in the store is checked against the host. Running ones are adopted (the
   * driver re-attaches), dead ones are reported with VmLost, boots cut short by the agent's own end
   * are cleaned up (their command is redelivered and boots afresh).
   */
  reconcile(): Promise<ReconcileReport> {
    return withSpan(
      "provisioner.reconcile",
      { "provisioner.driver": this.driverName, "host.id": this.hostId },
      async () => {
        const report = { adopted: [] as string[], lost: [] as string[], cleaned: [] as string[] };
        for (const held of await listHeld(this.#store.db)) {
          await withContext({ vm_id: held.vmId, action: "reconcile" }, () =>
            this.#locks.run(held.vmId, () => this.#reconcileOne(held, report)),
          ).catch((error: unknown) =>
            log.error(
              { vm_id: held.vmId, ...errorFields(error) },
              "could not reconcile the VM; it is left as it was",
            ),
          );
        }
        log.info(
          { adopted: report.adopted.length, lost: report.lost.length, cleaned: report.cleaned.length },
          "reconciled the VMs of this host",
        );
        return report;
      },
    );
  }

  async #reconcileOne(
    held: HeldVm,
    report: { adopted: string[]; lost: string[]; cleaned: string[] },
  ): Promise<void> {
    let live: InstanceStatus | undefined;
    let instance = held.instance;
    if (instance) {
      const adopted = await withSpan("provisioner.adopt", this.#attributes(held.vmId), () =>
        this.#driver.adopt(instance),
      );
      live = adopted.status;
      instance = adopted.instance;
    }
    const next = afterRestart(held, live);
    if (next.clear && instance) await this.#driver.destroy(instance);
    if (next.status === "running") report.adopted.push(held.vmId);
    if (next.clear) report.cleaned.push(held.vmId);
    if (next.lost) {
      report.lost.push(held.vmId);
      log.warn({ pid: instance?.pid }, "VM lost while the agent was down");
    }
    if (next.status === held.status && !next.lost && !next.clear) return;
    const events: ProvisionerEvent[] = next.lost
      ? [
          {
            type: "VmLost",
            data: {
              vmId: held.vmId,
              hostId: this.hostId,
              reason: `its ${this.driverName} process${instance?.pid ? ` (pid ${instance.pid})` : ""} ended while the agent was down`,
            },
          },
        ]
      : [];
    await this.#store.transaction((session) =>
      recordVm(
        session,
        this.driverName,
        {
          vmId: held.vmId,
          status: next.status,
          spec: held.spec,
          instance: next.clear ? null : (instance ?? null),
        },
        events,
      ),
    );
  }

  /**
   * The watch, run with every heartbeat: a running VM whose process ended without a stop is reported
   * lost. VMs in the middle of an operation are left to it.
   */
  async findLost(): Promise<string[]> {
    const lost: string[] = [];
    for (const held of await listHeld(this.#store.db)) {
      if (held.status !== "running" || !held.instance || this.#locks.busy(held.vmId)) continue;
      await withContext({ vm_id: held.vmId, action: "watch" }, () =>
        this.#locks.run(held.vmId, async () => {
          const now = await loadVm(this.#store.db, held.vmId);
          if (now?.status !== "running" || !now.instance) return;
          if ((await this.#status(now.instance)) !== "gone") return;
          log.warn({ pid: now.instance.pid }, "VM lost: its process ended without a stop");
          lost.push(held.vmId);
          await this.#store.transaction((session) =>
            recordVm(
              session,
              this.driverName,
              { vmId: now.vmId, status: "lost", spec: now.spec, instance: now.instance! },
              [
                {
                  type: "VmLost",
                  data: {
                    vmId: now.vmId,
                    hostId: this.hostId,
                    reason: `its ${this.driverName} process${now.instance!.pid ? ` (pid ${now.instance!.pid})` : ""} ended without a stop`,
                  },
                },
              ],
            ),
          );
        }),
      ).catch((error: unknown) =>
        log.error({ vm_id: held.vmId, ...errorFields(error) }, "watching the VM failed"),
      );
    }
    return lost;
  }

  /** For PROVISIONER_STOP_VMS_ON_EXIT: stops every running VM and reports it lost to vm-service. */
  async stopAll(): Promise<void> {
    for (const held of await listHeld(this.#store.db)) {
      if (held.status !== "running" || !held.instance) continue;
      const instance = held.instance;
      await withContext({ vm_id: held.vmId, action: "stop-on-exit" }, () =>
        this.#locks.run(held.vmId, async () => {
          await withSpan("provisioner.stop", this.#attributes(held.vmId), () => this.#driver.stop(instance));
          await this.#store.transaction((session) =>
            recordVm(
              session,
              this.driverName,
              { vmId: held.vmId, status: "stopped", spec: held.spec, instance },
              [
                {
                  type: "VmLost",
                  data: {
                    vmId: held.vmId,
                    hostId: this.hostId,
                    reason: "the agent stopped it on exit (PROVISIONER_STOP_VMS_ON_EXIT)",
                  },
                },
              ],
            ),
          );
          log.info({}, "VM stopped with the agent");
        }),
      ).catch((error: unknown) =>
        log.error({ vm_id: held.vmId, ...errorFields(error) }, "could not stop the VM on exit"),
      );
    }
  }

  runningVms(): Promise<number> {
    return countRunning(this.#store.db);
  }

  /** The VM's console tail, or undefined for a VM this host does not hold. */
  async console(vmId: string, maxBytes: number): Promise<ConsoleView | undefined> {
    const held = await loadVm(this.#store.db, vmId);
    if (!held || held.status === "destroyed") return undefined;
    const output = held.instance ? await this.#driver.console(held.instance, maxBytes).catch(() => "") : "";
    return { status: held.status, output };
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
