import type { AuditEntry, Vm } from "./api-types.ts";

/** A hypervisor host as its own announcements in the audit log describe it. */
export interface HostView {
  readonly id: string;
  readonly driver: string | null;
  readonly vcpus: number | null;
  readonly memoryMb: number | null;
  readonly registeredAt: string | null;
  readonly lastHeartbeat: string | null;
  /** VMs the host said it runs, in its last heartbeat. */
  readonly runningVms: number | null;
  /** When it said it was stopping, if that is the last thing it said. */
  readonly stoppedAt: string | null;
  /** VMs the control plane places on it. */
  readonly vms: number;
  /** Whether vm-service reports the host unreachable for its VMs (null: no VM there to say). */
  readonly reachable: boolean | null;
}

const num = (v: unknown): number | null => (typeof v === "number" ? v : null);
const text = (v: unknown): string | null => (typeof v === "string" ? v : null);

/**
 * Hosts from what they announced (HostRegistered: driver and capacity; HostHeartbeat; HostStopped),
 * newest first in each list or not, and the VMs placed on them. The API has no hosts route: the audit
 * log, which keeps every event, is where their announcements can be read.
 */
export function hostsFrom(
  registered: readonly AuditEntry[],
  heartbeats: readonly AuditEntry[],
  stopped: readonly AuditEntry[],
  vms: readonly Vm[],
): HostView[] {
  const latest = (entries: readonly AuditEntry[]): Map<string, AuditEntry> => {
    const by = new Map<string, AuditEntry>();
    for (const e of entries) {
      const seen = by.get(e.entity_id);
      if (!seen || seen.recorded_at < e.recorded_at) by.set(e.entity_id, e);
    }
    return by;
  };
  const reg = latest(registered);
  const beat = latest(heartbeats);
  const stop = latest(stopped);
  const ids = new Set([...reg.keys(), ...beat.keys(), ...stop.keys(), ...vms.flatMap((v) => v.host ?? [])]);
  return [...ids].sort().map((id) => {
    const r = reg.get(id);
    const b = beat.get(id);
    const s = stop.get(id);
    const lastSign = [r?.recorded_at, b?.recorded_at].filter(Boolean).sort().at(-1);
    const on = vms.filter((v) => v.host === id);
    const statuses = on.map((v) => v.host_status).filter((x) => x !== null);
    return {
      id,
      driver: text(r?.data.driver),
      vcpus: num(r?.data.vcpus),
      memoryMb: num(r?.data.memoryMb),
      registeredAt: r?.recorded_at ?? null,
      lastHeartbeat: b?.recorded_at ?? null,
      runningVms: num(b?.data.runningVms),
      stoppedAt: s && (!lastSign || s.recorded_at > lastSign) ? s.recorded_at : null,
      vms: on.length,
      reachable: statuses.length === 0 ? null : !statuses.includes("unreachable"),
    };
  });
}
