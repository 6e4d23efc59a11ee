import { setTimeout as delay } from "node:timers/promises";
import { createLogger, errorFields, withContext, withSpan } from "@mikrom/telemetry";
import { type Found, type HeldVm, settle } from "../domain/plan.ts";
import type { Driver, Instance } from "../drivers/driver.ts";
import type { AgentStore, ProvisionerEvent } from "../store/event-store.ts";
import { listHeld, loadVm, recordVm } from "../store/instances.ts";
import type { DriverActions } from "./actions.ts";
import type { VmLocks } from "./vm-locks.ts";

const log = createLogger("mikrom.provisioner.agent");

export interface ReconcileReport {
  readonly adopted: string[];
  readonly lost: string[];
  /** Boots cut short by the agent's own end, whose leftovers were removed. */
  readonly cleaned: string[];
}

/**
 * The host's VMs checked against the driver when no command acts on them: at start (the reconcile:
 * adopt what runs, clear boots cut short, report what died), and then every interval (the watch:
 * a running VM whose process ended without a stop is reported lost). Both only need the host's
 * database and the driver, never NATS: VmLost goes through the outbox and is published once NATS
 * is back. Also the stop of every VM on exit, when asked for.
 */
export class HostWatch {
  readonly #store: AgentStore;
  readonly #driver: Driver;
  readonly #hostId: string;
  readonly #actions: DriverActions;
  readonly #locks: VmLocks;
  readonly #stop = new AbortController();
  #loop: Promise<void> | undefined;

  constructor(options: {
    store: AgentStore;
    driver: Driver;
    hostId: string;
    actions: DriverActions;
    locks: VmLocks;
  }) {
    this.#store = options.store;
    this.#driver = options.driver;
    this.#hostId = options.hostId;
    this.#actions = options.actions;
    this.#locks = options.locks;
  }

  #attributes(vmId: string): Record<string, string> {
    return { "provisioner.driver": this.#driver.name, "vm.id": vmId, "host.id": this.#hostId };
  }

  reconcile(): Promise<ReconcileReport> {
    return withSpan(
      "provisioner.reconcile",
      { "provisioner.driver": this.#driver.name, "host.id": this.#hostId },
      async () => {
        const report = { adopted: [] as string[], lost: [] as string[], cleaned: [] as string[] };
        for (const held of await listHeld(this.#store.db)) {
          await withContext({ vm_id: held.vmId, action: "reconcile" }, () =>
            this.#locks.run(held.vmId, async () => {
              const found = await withSpan("provisioner.adopt", this.#attributes(held.vmId), () =>
                this.#actions.look(held.vmId, held),
              );
              const next = await this.#settle(held, found, "ended while the agent was down");
              if (next === "running") report.adopted.push(held.vmId);
              if (next === "cleaned") report.cleaned.push(held.vmId);
              if (next === "lost") report.lost.push(held.vmId);
            }),
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

  /** The watch, every `intervalMs` until stop; a round that fails (the database away) is logged and the next one tries again. */
  start(intervalMs: number): void {
    this.#loop ??= (async () => {
      const signal = this.#stop.signal;
      while (!signal.aborted) {
        await delay(intervalMs, undefined, { signal }).catch(() => {});
        if (signal.aborted) return;
        await this.findLost().catch((error: unknown) =>
          log.warn(errorFields(error), "the watch could not read the host's VMs; trying again next round"),
        );
      }
    })();
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
  }

  /**
   * One round of the watch: running VMs (not in the middle of an operation) whose process ended
   * without a stop are reported lost. Returns their ids.
   */
  async findLost(): Promise<string[]> {
    const lost: string[] = [];
    for (const held of await listHeld(this.#store.db)) {
      if (held.status !== "running" || this.#locks.busy(held.vmId)) continue;
      await withContext({ vm_id: held.vmId, action: "watch" }, () =>
        this.#locks.run(held.vmId, async () => {
          const now = await loadVm(this.#store.db, held.vmId);
          if (now?.status !== "running") return;
          const found = await this.#actions.look(now.vmId, now);
          // Only an ended process is news here (a paused VM is left as it is, as before).
          if (found !== undefined && found.status !== "gone") return;
          if ((await this.#settle(now, found, "ended without a stop")) === "lost") lost.push(now.vmId);
        }),
      ).catch((error: unknown) =>
        log.error({ vm_id: held.vmId, ...errorFields(error) }, "watching the VM failed"),
      );
    }
    return lost;
  }

  /** Records what became of the VM (see plan.ts settle); says what it did. */
  async #settle(
    held: HeldVm,
    found: Found | undefined,
    lostHow: string,
  ): Promise<"running" | "cleaned" | "lost" | "kept"> {
    const next = settle(held, found);
    if (next.clear) await this.#driver.destroy(next.clear);
    const unchanged =
      next.status === held.status &&
      !next.lost &&
      !next.clear &&
      held.operation === undefined &&
      sameRecord(next.instance, held.instance);
    if (!unchanged) {
      const pid = next.instance?.pid ?? held.instance?.pid;
      const events: ProvisionerEvent[] = next.lost
        ? [
            {
              type: "VmLost",
              data: {
                vmId: held.vmId,
                hostId: this.#hostId,
                reason: `its ${this.#driver.name} process${pid ? ` (pid ${pid})` : ""} ${lostHow}`,
              },
            },
          ]
        : [];
      if (next.lost) log.warn({ pid }, `VM lost: its process ${lostHow}`);
      else if (next.status !== held.status)
        log.info({ was: held.status, now: next.status }, "VM found as the driver has it");
      await this.#store.transaction((session) =>
        recordVm(
          session,
          this.#driver.name,
          { vmId: held.vmId, status: next.status, spec: held.spec, instance: next.instance },
          events,
        ),
      );
    }
    if (next.lost) return "lost";
    if (next.clear || (held.status === "booting" && next.status === "failed")) return "cleaned";
    return next.status === "running" ? "running" : "kept";
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
              this.#driver.name,
              { vmId: held.vmId, status: "stopped", spec: held.spec, instance },
              [
                {
                  type: "VmLost",
                  data: {
                    vmId: held.vmId,
                    hostId: this.#hostId,
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
}

function sameRecord(a: Instance | null, b: Instance | undefined): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}
