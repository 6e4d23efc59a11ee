import { request } from "node:http";

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
