import { constants } from "node:fs";
import { access } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { join, resolve } from "node:path";
import { osErrorText } from "./os-error.ts";
import { type FirecrackerSpec, loadFirecrackerSpec, type MatchedOperation } from "./spec.ts";

/**
 * A stand-in for Firecracker's API on a unix socket, for tests: every request is checked against
 * the official spec (method, path, body schema), the state rules Firecracker enforces are applied
 * (pre-boot only calls, one InstanceStart, a kernel before start, ids in path and body agree), and
 * the answers are the spec's (204, 200 with a body of the spec's shape, 400 `{fault_message}`).
 * After InstanceStart a simulated guest prints the readiness line the real guest prints (reading
 * mikrom.vm=/mikrom.ip= from boot_args); after SendCtrlAltDel it "reboots", which ends Firecracker.
 */

export type VmState = "Not started" | "Running" | "Paused";

export interface JournalEntry {
  method: string;
  path: string;
  body?: unknown;
  status: number;
  fault?: string;
}

export interface FakeFirecrackerOptions {
  socketPath: string;
  spec?: FirecrackerSpec;
  /** Firecracker opens the kernel, initrd and drive files when they are configured. Default true. */
  checkPaths?: boolean;
  /**
   * Firecracker under the jailer: its chroot. The paths it is given (those files; the socket is
   * the caller's to place) are taken inside it, as a chrooted process takes them.
   */
  root?: string;
  /** The `--id` it was started with (the jailer passes one). Default "anonymous-instance". */
  instanceId?: string;
  /** Simulated guest: ms from InstanceStart to its readiness line. Default 20. */
  guestBootMs?: number;
  /** The guest's serial console (Firecracker writes it to its stdout). */
  console?: (text: string) => void;
  /** Called once the simulated guest has shut down after SendCtrlAltDel (Firecracker then exits). */
  onGuestShutdown?: () => void;
  /** Called for each request after it is answered. */
  onRequest?: (entry: JournalEntry) => void;
}

export interface FakeFirecracker {
  readonly journal: readonly JournalEntry[];
  readonly state: VmState;
  close(): Promise<void>;
}

class Fault extends Error {
  readonly status: number;
  constructor(message: string, status = 400) {
    super(message);
    this.status = status;
  }
}

interface VmConfig {
  machine: Record<string, unknown>;
  bootSource?: { kernel_image_path: string; initrd_path?: string; boot_args?: string };
  drives: Map<string, Record<string, unknown>>;
  interfaces: Map<string, Record<string, unknown>>;
}

export async function startFakeFirecracker(options: FakeFirecrackerOptions): Promise<FakeFirecracker> {
  const spec = options.spec ?? loadFirecrackerSpec();
  const checkPaths = options.checkPaths ?? true;
  const journal: JournalEntry[] = [];
  const config: VmConfig = {
    machine: { vcpu_count: 1, mem_size_mib: 128, smt: false, track_dirty_pages: false },
    drives: new Map(),
    interfaces: new Map(),
  };
  let state: VmState = "Not started";
  let shuttingDown = false;
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, fn: () => void): void => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      fn();
    }, ms);
    timers.add(timer);
  };

  /** Opened as Firecracker opens it, by the user it runs as: a file it may not read (or write) is refused. */
  const mustOpen = async (path: unknown, what: string, writable = false): Promise<void> => {
    if (!checkPaths || typeof path !== "string") return;
    try {
      await access(inRoot(options.root, path), writable ? constants.R_OK | constants.W_OK : constants.R_OK);
    } catch (error) {
      throw new Fault(`Cannot open ${what} ${path}: ${osErrorText(error)}`);
    }
  };

  const handle = async (
    matched: MatchedOperation,
    body: Record<string, unknown> | undefined,
  ): Promise<{ status: number; body?: unknown }> => {
    const { operation, params } = matched;
    if (operation.phase === "pre-boot" && state !== "Not started") {
      throw new Fault("The requested operation is not supported after starting the microVM.");
    }
    if (operation.phase === "post-boot" && state === "Not started") {
      throw new Fault("The requested operation is not supported before starting the microVM.");
    }
    for (const param of operation.pathParams) {
      if (body && param in body && body[param] !== params[param]) {
        throw new Fault("The id from the path does not match the id from the body!");
      }
    }
    switch (operation.operationId) {
      case "describeInstance":
        return {
          status: 200,
          body: {
            app_name: "Firecracker",
            id: options.instanceId ?? "anonymous-instance",
            state,
            vmm_version: spec.version,
          },
        };
      case "getFirecrackerVersion":
        return { status: 200, body: { firecracker_version: spec.version } };
      case "getMachineConfiguration":
        return { status: 200, body: config.machine };
      case "getExportVmConfig":
        return {
          status: 200,
          body: {
            "machine-config": config.machine,
            ...(config.bootSource ? { "boot-source": config.bootSource } : {}),
            drives: [...config.drives.values()],
            "network-interfaces": [...config.interfaces.values()],
          },
        };
      case "putMachineConfiguration":
        config.machine = { smt: false, track_dirty_pages: false, ...(body ?? {}) };
        return { status: 204 };
      case "patchMachineConfiguration":
        config.machine = { ...config.machine, ...(body ?? {}) };
        return { status: 204 };
      case "putGuestBootSource":
        await mustOpen(body?.kernel_image_path, "kernel image");
        await mustOpen(body?.initrd_path, "initrd");
        config.bootSource = body as VmConfig["bootSource"];
        return { status: 204 };
      case "putGuestDriveByID":
        await mustOpen(body?.path_on_host, "drive file", body?.is_read_only !== true);
        config.drives.set(params.drive_id!, body!);
        return { status: 204 };
      case "putGuestNetworkInterfaceByID":
        config.interfaces.set(params.iface_id!, body!);
        return { status: 204 };
      case "patchVm":
        state = body?.state === "Paused" ? "Paused" : "Running";
        return { status: 204 };
      case "createSyncAction":
        return action(String(body?.action_type));
      default:
        if (operation.method === "GET") throw new Fault("not supported by the fake Firecracker", 500);
        return { status: 204 };
    }
  };

  const action = (type: string): { status: number } => {
    switch (type) {
      case "InstanceStart": {
        if (state !== "Not started") throw new Fault("The microVM is already running.");
        if (!config.bootSource) {
          throw new Fault("Cannot start microvm without kernel configuration.");
        }
        state = "Running";
        const args = config.bootSource.boot_args ?? "";
        later(options.guestBootMs ?? 20, () => {
          if (state !== "Running" || shuttingDown) return;
          options.console?.(`${guestReadyLine(args)}\n`);
        });
        return { status: 204 };
      }
      case "SendCtrlAltDel": {
        if (state === "Not started")
          throw new Fault("The requested operation is not supported before starting the microVM.");
        shuttingDown = true;
        later(10, () => {
          options.console?.("reboot: Restarting system\n");
          options.onGuestShutdown?.();
        });
        return { status: 204 };
      }
      case "FlushMetrics":
        throw new Fault("Metrics system not initialized.");
      default:
        throw new Fault(`unknown action ${type}`);
    }
  };

  const server: Server = createServer((req, res) => {
    void serve(req, res);
  });

  const serve = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const method = req.method ?? "GET";
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    const entry: JournalEntry = { method, path, status: 0 };
    let answer: { status: number; body?: unknown };
    try {
      const matched = spec.match(method, path);
      if (!matched || matched === "wrong-method") {
        throw new Fault(`Invalid request method and/or path: ${method} ${path}.`);
      }
      let body: Record<string, unknown> | undefined;
      if (text.trim()) {
        try {
          body = JSON.parse(text) as Record<string, unknown>;
        } catch (error) {
          throw new Fault(
            `An error occurred when deserializing the json body of a request: ${(error as Error).message}`,
          );
        }
        entry.body = body;
      }
      const expected = matched.operation.body;
      if (!expected && body !== undefined) throw new Fault(`${method} ${path} takes no body.`);
      if (expected) {
        if (body === undefined) {
          if (expected.required) throw new Fault(`Missing body for ${method} ${path}.`);
        } else if (!expected.validate(body)) {
          const errors = (expected.validate.errors ?? [])
            .map(
              (e) =>
                `${e.instancePath || "body"} ${e.message}${e.params && "additionalProperty" in e.params ? ` (${String(e.params.additionalProperty)})` : ""}`,
            )
            .join("; ");
          throw new Fault(`An error occurred when deserializing the json body of a request: ${errors}`);
        }
      }
      answer = await handle(matched, body);
      checkResponse(spec, matched, answer);
    } catch (error) {
      const status = error instanceof Fault ? error.status : 500;
      answer = { status, body: { fault_message: (error as Error).message } };
      entry.fault = (error as Error).message;
    }
    entry.status = answer.status;
    journal.push(entry);
    if (answer.body === undefined) {
      res.writeHead(answer.status).end();
    } else {
      res.writeHead(answer.status, { "Content-Type": "application/json" }).end(JSON.stringify(answer.body));
    }
    options.onRequest?.(entry);
  };

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.socketPath, () => {
      server.off("error", reject);
      resolve();
    });
  });

  return {
    journal,
    get state() {
      return state;
    },
    close: async () => {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The fake answers as the spec says: a 200 body must be of the spec's response schema. */
function checkResponse(
  spec: FirecrackerSpec,
  matched: MatchedOperation,
  answer: { status: number; body?: unknown },
): void {
  const schemas: Record<string, string> = {
    describeInstance: "InstanceInfo",
    getFirecrackerVersion: "FirecrackerVersion",
    getMachineConfiguration: "MachineConfiguration",
    getExportVmConfig: "FullVmConfiguration",
  };
  const name = schemas[matched.operation.operationId];
  if (answer.status === 200 && name) {
    const validate = spec.definition(name);
    if (!validate(answer.body))
      throw new Error(`fake answer breaks the spec (${name}): ${JSON.stringify(validate.errors)}`);
  }
  if (!matched.operation.responses.includes(answer.status)) {
    throw new Error(
      `fake answered ${answer.status}, which the spec does not list for ${matched.operation.operationId}`,
    );
  }
}

/** `path` as a process whose root is `root` finds it: never outside that root. */
export function inRoot(root: string | undefined, path: string): string {
  return root ? join(root, resolve("/", path)) : path;
}

/** What the Mikrom guest's /init would print, from the boot arguments the driver passed. */
export function guestReadyLine(bootArgs: string): string {
  const arg = (key: string): string | undefined =>
    bootArgs
      .split(/\s+/)
      .find((a) => a.startsWith(`${key}=`))
      ?.slice(key.length + 1);
  return `MIKROM-READY vm=${arg("mikrom.vm") ?? "unknown"} ip=${arg("mikrom.ip") ?? "none"}`;
}
