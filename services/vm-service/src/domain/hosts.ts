/**
 * The host registry as data: which provisioner hosts answer, what they hold, where a VM fits.
 * Times are milliseconds of this service's own clock, passed in: when a heartbeat *arrived*, never
 * what the host's clock said (a host whose clock is 10 minutes off is as alive as any). Nothing here
 * reads a clock.
 *
 * A host is `up` while its heartbeats arrive; `unreachable` once they stop for the heartbeat timeout
 * (its VMs are most likely still running: they keep their state and wait for it); `lost` only when
 * it stays unreachable for the grace period, and only then do its VMs count as gone.
 */
export type HostStatus = "up" | "unreachable" | "lost";

export interface Host {
  readonly hostId: string;
  readonly driver: string;
  readonly vcpus: number;
  readonly memoryMb: number;
  readonly status: HostStatus;
  /** When its last registration or heartbeat arrived (this service's clock). */
  readonly lastSeenMs: number;
  /** When it was found unreachable; null while up. */
  readonly unreachableSinceMs: number | null;
}

/** A host with what its placed VMs use (VMs with this host that are neither failed nor deleted). */
export interface HostLoad extends Host {
  /** How many VMs it holds. */
  readonly vms: number;
  readonly usedVcpus: number;
  readonly usedMemoryMb: number;
}

export interface Need {
  readonly vcpuCount: number;
  readonly memoryMb: number;
}

/** How long silence may last before a host is unreachable, and then before it is lost. */
export interface Liveness {
  readonly heartbeatTimeoutMs: number;
  readonly lostAfterMs: number;
}

/** Up, and heard from within the timeout: a VM may be placed on it. */
export function isLive(host: Host, nowMs: number, heartbeatTimeoutMs: number): boolean {
  return host.status === "up" && nowMs - host.lastSeenMs <= heartbeatTimeoutMs;
}

export function fits(host: HostLoad, need: Need): boolean {
  return host.vcpus - host.usedVcpus >= need.vcpuCount && host.memoryMb - host.usedMemoryMb >= need.memoryMb;
}

/**
 * Where a VM goes: the live host with room that is least loaded once it holds the VM. A host's load
 * is its largest share of VMs, vCPUs or memory, each taken of its own capacity (its vCPUs bound how
 * many VMs it can hold) and over the live hosts' mean share of the same. Each resource is balanced
 * so: a small VM goes where few VMs are, a large one where little memory is used, and a host twice
 * the size holds twice as much. Spreading by free memory alone left some hosts with 1.45× the VMs
 * of others when VM sizes were mixed, and filled large hosts before small ones took any. Ties go to
 * the fewest VMs, then to the host id, so the choice is the same every time.
 */
export function pickHost(
  hosts: readonly HostLoad[],
  need: Need,
  nowMs: number,
  heartbeatTimeoutMs: number,
): string | null {
  const live = hosts.filter((h) => isLive(h, nowMs, heartbeatTimeoutMs));
  // With nothing placed yet a mean is 0: every host then compares by its share alone.
  const mean = (share: (h: HostLoad) => number): number =>
    live.reduce((sum, h) => sum + share(h), 0) / live.length || 1;
  const vms = mean((h) => h.vms / h.vcpus);
  const vcpus = mean((h) => h.usedVcpus / h.vcpus);
  const memory = mean((h) => h.usedMemoryMb / h.memoryMb);
  const load = (h: HostLoad): number =>
    Math.max(
      (h.vms + 1) / h.vcpus / vms,
      (h.usedVcpus + need.vcpuCount) / h.vcpus / vcpus,
      (h.usedMemoryMb + need.memoryMb) / h.memoryMb / memory,
    );
  const candidates = live
    .filter((h) => fits(h, need))
    .map((h) => ({ h, load: load(h) }))
    .sort((a, b) => a.load - b.load || a.h.vms - b.h.vms || a.h.hostId.localeCompare(b.h.hostId));
  return candidates[0]?.h.hostId ?? null;
}

/** What the sweeper does to the hosts now: those gone silent become unreachable, those silent past the grace lost. */
export function judgeHosts(
  hosts: readonly Host[],
  nowMs: number,
  liveness: Liveness,
): { unreachable: string[]; lost: string[] } {
  const unreachable = hosts
    .filter((h) => h.status === "up" && nowMs - h.lastSeenMs > liveness.heartbeatTimeoutMs)
    .map((h) => h.hostId);
  const lost = hosts
    .filter(
      (h) =>
        h.status === "unreachable" &&
        h.unreachableSinceMs !== null &&
        nowMs - h.unreachableSinceMs > liveness.lostAfterMs,
    )
    .map((h) => h.hostId);
  return { unreachable, lost };
}

/** True when the host exists and is not answering (its VMs wait for it). */
export function isUnreachable(hosts: readonly Host[], hostId: string | null): boolean {
  // A VM on no host (null) matches none.
  return hosts.some((h) => h.hostId === hostId && h.status === "unreachable");
}

/** Why no host was found, for the VM's error message. */
export function noRoomMessage(
  hosts: readonly HostLoad[],
  need: Need,
  nowMs: number,
  timeoutMs: number,
): string {
  const live = hosts.filter((h) => isLive(h, nowMs, timeoutMs));
  if (live.length === 0) return "no live provisioner host";
  return `no live host with room for ${need.vcpuCount} vCPU and ${need.memoryMb} MB (${live.length} live)`;
}
