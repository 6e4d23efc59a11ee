import type { VmEvent } from "./api-types.ts";

/** `2025-12-02 08:27:03 UTC`: one zone for everyone reading the same page or log. */
export function when(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

/** `4 s ago`, `3 min ago`, `2 h ago`, `5 d ago`. */
export function ago(iso: string, now: number): string {
  const s = Math.max(0, Math.round((now - new Date(iso).getTime()) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86_400)} d ago`;
}

export function memory(mb: number): string {
  return mb >= 1024 && mb % 1024 === 0 ? `${mb / 1024} GiB` : `${mb} MiB`;
}

const str = (v: unknown): string => (typeof v === "string" || typeof v === "number" ? String(v) : "?");

/** What an event of a VM's history says, in a sentence. */
export function eventSummary(e: Pick<VmEvent, "type" | "data">): string {
  const d = e.data;
  switch (e.type) {
    case "VmCreated":
      return `Created: ${str(d.vcpuCount)} vCPU, ${memory(Number(d.memoryMb))}`;
    case "VmUpdated":
      return d.name !== undefined ? `Renamed to ${str(d.name)}` : "Description changed";
    case "VmAwaitingHost":
      return `Address ${str(d.ipAddress)} held; waiting for a host with room`;
    case "VmProvisioning":
      return `Provisioning on ${str(d.hostId)} with address ${str(d.ipAddress)}`;
    case "VmRunning":
      return `Running on ${str(d.hostId)} at ${str(d.ipAddress)}`;
    case "VmStartRequested":
      return "Start requested";
    case "VmStopRequested":
      return "Stop requested";
    case "VmStopped":
      return "Stopped";
    case "VmRestartRequested":
      return "Restart requested";
    case "VmDeleteRequested":
      return "Delete requested";
    case "VmDeleted":
      return "Deleted";
    case "VmFailed":
      return `Failed (${str(d.step)}): ${str(d.errorMessage)}`;
    default:
      return e.type;
  }
}

/**
 * A path on this console to go back to after a form, never another site (`//evil`, `/\evil`) nor a
 * header split by a line break.
 */
export function localPath(raw: string | undefined, fallback = "/"): string {
  if (!raw?.startsWith("/") || raw.startsWith("//") || raw.startsWith("/\\")) return fallback;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses
  return /[\u0000-\u001f\u007f]/.test(raw) ? fallback : raw;
}
