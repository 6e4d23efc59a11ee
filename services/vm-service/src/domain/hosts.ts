/**
 * The host registry as data: which provisioner hosts are alive, what they hold, where a VM fits.
 * Times are milliseconds since the epoch, passed in: nothing here reads a clock.
 */
export interface Host {
  readonly hostId: string;
  readonly driver: string;
  readonly vcpus: number;
  readonly memoryMb: number;
  /** Last HostRegistered or HostHeartbeat. */
  readonly lastSeenMs: number;
  /** False once the host said it stopped or was declared lost; a new registration revives it. */
  readonly live: boolean;
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

export function isLive(host: Host, nowMs: number, heartbeatTimeoutMs: number): boolean {
  return host.live && nowMs - host.lastSeenMs <= heartbeatTimeoutMs;
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

/** Hosts still marked live whose last heartbeat is older than the timeout: their VMs are lost. */
export function expiredHosts(hosts: readonly Host[], nowMs: number, heartbeatTimeoutMs: number): string[] {
  return hosts.filter((h) => h.live && nowMs - h.lastSeenMs > heartbeatTimeoutMs).map((h) => h.hostId);
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
