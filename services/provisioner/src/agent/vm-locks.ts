import { KeyedLock } from "../drivers/keyed-lock.ts";

/**
 * One operation at a time per VM (a shutdown that arrives while its boot runs waits for the boot),
 * different VMs in parallel. `busy` lets the watch pass over a VM in the middle of an operation
 * instead of queueing behind a 60 s boot.
 */
export class VmLocks {
  readonly #lock = new KeyedLock();
  readonly #holders = new Map<string, number>();

  run<T>(vmId: string, task: () => Promise<T>): Promise<T> {
    this.#holders.set(vmId, (this.#holders.get(vmId) ?? 0) + 1);
    return this.#lock.run(vmId, task).finally(() => {
      const left = (this.#holders.get(vmId) ?? 1) - 1;
      if (left === 0) this.#holders.delete(vmId);
      else this.#holders.set(vmId, left);
    });
  }

  busy(vmId: string): boolean {
    return this.#holders.has(vmId);
  }
}
