import { mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Linux caps a unix socket path at 107 bytes (sun_path is 108 with the terminating NUL). */
const MAX_SOCKET_PATH = 107;

/** Where VM folders live by default: /run/mikrom for root, else the user's runtime or temp folder. */
export function defaultRunDir(env: Readonly<Record<string, string | undefined>>): string {
  if (process.getuid?.() === 0) return "/run/mikrom";
  const runtime = env.XDG_RUNTIME_DIR;
  return runtime ? join(runtime, "mikrom") : join(tmpdir(), `mikrom-${process.getuid?.() ?? "user"}`);
}

export interface VmPaths {
  dir: string;
  console: string;
  /** The hypervisor's own stdout/stderr (errors before the guest prints anything). */
  output: string;
  socket: string;
  /** Present after a deliberate stop: tells `stopped` from `gone`. */
  stoppedMarker: string;
}

export function vmPaths(runDir: string, vmId: string, socketName: string): VmPaths {
  const dir = join(runDir, vmId);
  const paths = {
    dir,
    console: join(dir, "console.log"),
    output: join(dir, "hypervisor.log"),
    socket: join(dir, socketName),
    stoppedMarker: join(dir, "stopped"),
  };
  if (Buffer.byteLength(paths.socket) > MAX_SOCKET_PATH) {
    throw new Error(`socket path too long for a unix socket (${paths.socket}): use a shorter run folder`);
  }
  return paths;
}

export async function ensureDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
}
