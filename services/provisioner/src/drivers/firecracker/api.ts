import { request } from "node:http";
import { createLogger, errorFields } from "@mikrom/telemetry";

const log = createLogger("mikrom.provisioner.driver.firecracker");

/** A call to Firecracker's API that it refused: its `fault_message` and HTTP status. */
export class FirecrackerApiError extends Error {
  override readonly name = "FirecrackerApiError";
  readonly status: number;
  readonly fault: string;
  constructor(method: string, path: string, status: number, fault: string) {
    super(`Firecracker ${method} ${path}: ${status} ${fault}`);
    this.status = status;
    this.fault = fault;
  }
}

/** One request to Firecracker's REST API over its unix socket; resolves with the parsed body (if any). */
export function firecrackerCall(
  socketPath: string,
  method: "GET" | "PUT" | "PATCH",
  path: string,
  body?: unknown,
  timeoutMs = 5000,
): Promise<unknown> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath,
        method,
        path,
        headers: {
          Accept: "application/json",
          ...(payload
            ? { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(payload) }
            : {}),
        },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("error", reject);
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let parsed: unknown;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            parsed = text;
          }
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) return resolve(parsed);
          const fault = (parsed as { fault_message?: string } | undefined)?.fault_message ?? text;
          reject(new FirecrackerApiError(method, path, status, fault));
        });
      },
    );
    req.on("timeout", () =>
      req.destroy(new Error(`Firecracker ${method} ${path}: no answer within ${timeoutMs} ms`)),
    );
    req.on("error", reject);
    req.end(payload);
  });
}

/**
 * A call that changes the VM (configuration, InstanceStart, SendCtrlAltDel), logged as the earlier
 * system logged each provisioning task: the VM, the method and path (and the action), how long it
 * took, and why it failed. Polling reads (`GET /`) go through firecrackerCall unlogged.
 */
export async function loggedFirecrackerCall(
  vmId: string,
  socketPath: string,
  method: "PUT" | "PATCH",
  path: string,
  body: unknown,
): Promise<unknown> {
  const started = performance.now();
  const action = (body as { action_type?: unknown } | undefined)?.action_type;
  const fields = { vm_id: vmId, method, path, ...(typeof action === "string" && { action_type: action }) };
  const ms = (): number => Math.round((performance.now() - started) * 1000) / 1000;
  try {
    const result = await firecrackerCall(socketPath, method, path, body);
    log.info({ ...fields, duration_ms: ms() }, "Firecracker API call");
    return result;
  } catch (error) {
    log.warn({ ...fields, duration_ms: ms(), ...errorFields(error) }, "Firecracker API call failed");
    throw error;
  }
}
