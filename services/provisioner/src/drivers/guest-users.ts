import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { BootFailed, DriverUnavailable } from "./errors.ts";
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

/** `1900000000-1900065535` as a range; undefined for `off`. */
export function parseUidRange(text: string): UidRange | undefined {
  if (text === "off") return undefined;
  const [first, last] = text.split("-").map(Number) as [number, number];
  return { first, count: last - first + 1 };
}

/** shadow-utils' own defaults for what login.defs does not say. */
const LOGIN_DEFAULTS: Readonly<Record<string, number>> = {
  UID_MIN: 1000,
  UID_MAX: 60000,
  GID_MIN: 1000,
  GID_MAX: 60000,
  SUB_UID_MIN: 100000,
  SUB_UID_MAX: 600100000,
  SUB_GID_MIN: 100000,
  SUB_GID_MAX: 600100000,
};

/**
 * Refuses a range that any account or group (`passwd`, `group`) or any subordinate id block
 * (`subuid`, `subgid`) uses, or that useradd may hand out later (`login.defs`: accounts from UID_MIN
 * to UID_MAX, subordinate blocks from SUB_UID_MIN to SUB_UID_MAX, 65536 each): a guest given such a
 * uid could signal or read that user's processes and files. A file that is missing holds nothing
 * (login.defs: its defaults hold).
 */
export async function checkUnused(range: UidRange, etc = "/etc"): Promise<void> {
  const last = range.first + range.count - 1;
  const overlaps = (from: number, to: number): boolean => from <= last && to >= range.first;
  const read = (name: string): Promise<string[]> =>
    readFile(join(etc, name), "utf8").then(
      (text) => text.split("\n").filter((line) => line && !line.startsWith("#")),
      () => [],
    );
  const clashes: string[] = [];
  for (const name of ["passwd", "group"]) {
    for (const line of await read(name)) {
      const [who, , id] = line.split(":");
      const n = Number(id);
      if (overlaps(n, n)) clashes.push(`${who} (${n}) in /etc/${name}`);
    }
  }
  for (const name of ["subuid", "subgid"]) {
    for (const line of await read(name)) {
      const [who, start, count] = line.split(":");
      const from = Number(start);
      const to = from + Number(count) - 1;
      if (overlaps(from, to)) clashes.push(`${who}'s block ${from}-${to} in /etc/${name}`);
    }
  }
  const defs = { ...LOGIN_DEFAULTS };
  for (const line of await read("login.defs")) {
    const [key, value] = line.trim().split(/\s+/);
    if (key && key in defs && /^\d+$/.test(value ?? "")) defs[key] = Number(value);
  }
  for (const [what, min, max] of [
    ["accounts", "UID_MIN", "UID_MAX"],
    ["groups", "GID_MIN", "GID_MAX"],
    ["subordinate uids", "SUB_UID_MIN", "SUB_UID_MAX"],
    ["subordinate gids", "SUB_GID_MIN", "SUB_GID_MAX"],
  ] as const) {
    if (overlaps(defs[min]!, defs[max]!))
      clashes.push(
        `useradd hands out ${what} from ${defs[min]} to ${defs[max]} (/etc/login.defs ${min}, ${max})`,
      );
  }
  if (clashes.length > 0) {
    throw new DriverUnavailable(
      `MIKROM_GUEST_UIDS ${range.first}-${last} is in use: ${clashes.slice(0, 3).join("; ")}${clashes.length > 3 ? ` and ${clashes.length - 3} more` : ""}. Set it to a range no account, group or subordinate id block uses, now or later (the default, 1900000000-1900065535, lies above what useradd hands out)`,
    );
  }
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
