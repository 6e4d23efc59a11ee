import { BootFailed } from "./errors.ts";
import { readRecords } from "./supervision.ts";

/*
 * A user of its own for each guest's hypervisor: a guest that escapes into it can then signal,
 * trace or read no other guest's process, as it could when every guest ran as `nobody`. The uids
 * come from a range no account uses (MIKROM_GUEST_UIDS), the gid is the uid, and a VM keeps its uid
 * for as long as its folder exists; an agent that restarts finds the taken ones in the VMs' records.
 */

export interface UidRange {
  readonly first: number;
  readonly count: number;
}

/** `400000-465535` as a range; undefined for `off`. */
export function parseUidRange(text: string): UidRange | undefined {
  if (text === "off") return undefined;
  const [first, last] = text.split("-").map(Number) as [number, number];
  return { first, count: last - first + 1 };
}

export class GuestUsers {
  readonly #range: UidRange;
  readonly #runDir: string;
  /** vm id → uid, read from the records on first use. */
  #taken: Promise<Map<string, number>> | undefined;
  /** Takes are serialized: two boots at once never get one uid. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(range: UidRange, runDir: string) {
    this.#range = range;
    this.#runDir = runDir;
  }

  /** The VM's uid: the one it had if it had one, else the lowest free in the range. */
  take(vmId: string): Promise<number> {
    const next = this.#queue.then(async () => {
      const taken = await this.#load();
      const held = taken.get(vmId);
      if (held !== undefined) return held;
      const used = new Set(taken.values());
      for (let uid = this.#range.first; uid < this.#range.first + this.#range.count; uid++) {
        if (used.has(uid)) continue;
        taken.set(vmId, uid);
        return uid;
      }
      throw new BootFailed(
        "prepare",
        `no guest uid free: all ${this.#range.count} of MIKROM_GUEST_UIDS are held`,
      );
    });
    this.#queue = next.catch(() => {});
    return next;
  }

  /** The VM's folder is gone: its uid is free again. */
  async release(vmId: string): Promise<void> {
    (await this.#load()).delete(vmId);
  }

  #load(): Promise<Map<string, number>> {
    this.#taken ??= (async () => {
      const taken = new Map<string, number>();
      for (const record of await readRecords(this.#runDir)) {
        if (record.guestUid !== undefined) taken.set(record.vmId, record.guestUid);
      }
      return taken;
    })();
    return this.#taken;
  }
}
