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
 * The live host with room that has the most free memory left (spreading load); ties go to the
 * fewest used vCPUs, then to the host id, so the choice is deterministic.
 */
export function pickHost(
  hosts: readonly HostLoad[],
  need: Need,
  nowMs: number,
  heartbeatTimeoutMs: number,
): string | null {
  const candidates = hosts
    .filter((h) => isLive(h, nowMs, heartbeatTimeoutMs) && fits(h, need))
    .sort(
      (a, b) =>
        b.memoryMb - b.usedMemoryMb - (a.memoryMb - a.usedMemoryMb) ||
        a.usedVcpus - b.usedVcpus ||
        a.hostId.localeCompare(b.hostId),
    );
  return candidates[0]?.hostId ?? null;
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
