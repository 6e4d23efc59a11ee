import type { DriverName } from "@mikrom/contracts";
import type { MetadataInput } from "@mikrom/eventstore";
import { createLogger, withContext, withSpan } from "@mikrom/telemetry";
import { type AgentCommand, type HeldVm, plan } from "../domain/plan.ts";
import type { Driver } from "../drivers/driver.ts";
import { tapNameFor } from "../drivers/network.ts";
import type { AgentStore } from "../store/event-store.ts";
import { vmStream } from "../store/event-store.ts";
import { countRunning, loadVm, recordVm } from "../store/instances.ts";
import { DriverActions } from "./actions.ts";
import { VmLocks } from "./vm-locks.ts";
import { HostWatch, type ReconcileReport } from "./watch.ts";

export type { AgentCommand, ReconcileReport };

const log = createLogger("mikrom.provisioner.agent");

/** Span names per command; the earlier system's `vm.start_firecracker`-style steps are the driver's logs. */
const SPAN: Readonly<Record<AgentCommand["type"], string>> = {
  BootVm: "provisioner.boot",
  ResumeVm: "provisioner.resume",
  RebootVm: "provisioner.reboot",
  ShutDownVm: "provisioner.stop",
  DestroyVm: "provisioner.destroy",
};

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

export interface ConsoleView {
  readonly status: Exclude<HeldVm["status"], "destroyed">;
  readonly output: string;
}

/**
 * The host agent: commands in (one VM's at a time, each acted on once, each answered, again if it
 * comes again), driver calls through DriverActions, and the VMs watched by HostWatch. The instances
 * table is the state; every fact is appended with the state change that explains it, and the outbox
 * relay publishes it.
 */
export class Agent {
  readonly hostId: string;
  readonly driverName: DriverName;
  readonly #store: AgentStore;
  readonly #driver: Driver;
  readonly #consumer: string;
  readonly #locks = new VmLocks();
  readonly #withTaps: boolean;
  readonly #actions: DriverActions;
  readonly watch: HostWatch;

  constructor(options: AgentOptions) {
    this.#withTaps = options.withTaps ?? false;
    this.#store = options.store;
    this.#driver = options.driver;
    this.hostId = options.hostId;
    this.driverName = options.driver.name;
    this.#consumer = options.consumer;
    this.#actions = new DriverActions({ store: this.#store, driver: this.#driver, hostId: this.hostId });
    this.watch = new HostWatch({
      store: this.#store,
      driver: this.#driver,
      hostId: this.hostId,
      actions: this.#actions,
      locks: this.#locks,
    });
  }

  /** Handles one command; resolves once its answer is recorded. A throw means "retry later". */
  handle(command: AgentCommand, meta: CommandMeta): Promise<void> {
    const vmId = command.data.vmId;
    return withContext({ vm_id: vmId, action: command.type }, () =>
      withSpan(
        SPAN[command.type],
        {
          "provisioner.driver": this.driverName,
          "vm.id": vmId,
          "host.id": this.hostId,
          "messaging.message.id": meta.messageId,
        },
        () => this.#locks.run(vmId, () => this.#handle(command, meta)),
      ),
    );
  }

  async #handle(command: AgentCommand, meta: CommandMeta): Promise<void> {
    const vmId = command.data.vmId;
    const started = performance.now();
    if (await this.#store.inboxHas(this.#consumer, meta.messageId)) {
      // Delivered again after its answer was recorded: acting again could undo a later command, but
      // the answer may have been lost on the way (NATS can lose what it acknowledged): send it again.
      const resent = await this.#store.resendCausedBy(meta.messageId);
      log.info(
        { message_id: meta.messageId, resent },
        `${command.type} already handled; not acted on again, its answer sent again`,
      );
      return;
    }
    const held = await loadVm(this.#store.db, vmId);
    const found = await this.#actions.look(vmId, held);
    const tap = this.#withTaps ? tapNameFor(vmId) : undefined;
    const step = plan(command, held, found, { hostId: this.hostId, driver: this.driverName, tap });
    const { change, answer } = await this.#actions.execute(step, vmId, held, command.type);

    const metadata: MetadataInput = {
      correlationId: meta.correlationId ?? meta.messageId,
      causationId: meta.messageId,
    };
    const once = await this.#store.handleOnce(this.#consumer, meta.messageId, async (session) => {
      if (change) return recordVm(session, this.driverName, change, [answer], metadata);
      // A VM this host does not hold (or a refusal): the answer goes into its history, no row.
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

  /** At start: every VM in the store checked against the driver (see HostWatch.reconcile). */
  reconcile(): Promise<ReconcileReport> {
    return this.watch.reconcile();
  }

  /** One round of the watch: running VMs whose process ended without a stop, reported lost. */
  findLost(): Promise<string[]> {
    return this.watch.findLost();
  }

  /** For PROVISIONER_STOP_VMS_ON_EXIT: stops every running VM and reports it lost to vm-service. */
  stopAll(): Promise<void> {
    return this.watch.stopAll();
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
