import { createServer, type Server } from "node:http";

export type Checks = Record<string, boolean>;

/**
 * A worker's health on its own port (HEALTH_PORT): `/health/live` answers while the process runs,
 * `/health/ready` answers 200 only when every check passes (NATS connected, its database answering),
 * 503 otherwise, with the checks in the body. An orchestrator stops sending work, never restarts.
 */
export async function serveHealth(
  port: number,
  host: string,
  checks: () => Promise<Checks>,
): Promise<{ port: number; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    const send = (status: number, body: unknown): void => {
      res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
      res.end(JSON.stringify(body));
    };
    if (path === "/health/live" || path === "/health") return send(200, { status: "alive" });
    if (path !== "/health/ready") return send(404, { status: "not found" });
    checks().then(
      (result) => {
        const ready = Object.values(result).every(Boolean);
        send(ready ? 200 : 503, { status: ready ? "ready" : "not ready", checks: result });
      },
      (error: unknown) => send(503, { status: "not ready", error: String(error) }),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  return {
    port: typeof address === "object" && address ? address.port : port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
