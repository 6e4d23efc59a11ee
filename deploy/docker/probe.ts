/**
 * The container health check of Mikrom's images (Docker HEALTHCHECK and Kubernetes exec probes).
 *   node probe.ts http <path>  GET http://127.0.0.1:$HEALTH_PORT<path> (else $PORT) answers 2xx
 *   node probe.ts deps         a worker (no HTTP port): the NATS and PostgreSQL servers its
 *                              environment names accept connections
 * A worker's liveness is its process (it exits when it cannot go on, and the container with it), so
 * `deps` says "this replica can work", no more. Runs in the image with Node's type stripping.
 */
import { connect } from "node:net";

const TIMEOUT_MS = 2_000;

function reachable(url: string, defaultPort: number): Promise<string | null> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port || defaultPort), timeout: TIMEOUT_MS });
    const done = (problem: string | null): void => {
      socket.destroy();
      resolve(problem);
    };
    socket.once("connect", () => done(null));
    socket.once("timeout", () => done(`${hostname}:${port || defaultPort}: timed out`));
    socket.once("error", (error) => done(`${hostname}:${port || defaultPort}: ${error.message}`));
  });
}

async function probe(args: string[]): Promise<string | null> {
  const env = process.env;
  if (args[0] === "http") {
    const port = env.HEALTH_PORT || env.PORT || "8080";
    const res = await fetch(`http://127.0.0.1:${port}${args[1] ?? "/health"}`, {
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    return res.ok ? null : `HTTP ${res.status}`;
  }
  if (args[0] === "deps") {
    const database =
      env.GATEWAY_DATABASE_URL ||
      env.VM_DATABASE_URL ||
      env.IPPOOL_DATABASE_URL ||
      env.PROVISIONER_DATABASE_URL ||
      env.DATABASE_URL ||
      "postgres://127.0.0.1:5432";
    const nats = (env.NATS_URL || "nats://127.0.0.1:4222").split(",")[0]!.trim();
    const problems = await Promise.all([reachable(nats, 4222), reachable(database, 5432)]);
    const found = problems.filter(Boolean);
    return found.length ? found.join("; ") : null;
  }
  return `unknown probe ${args.join(" ")}: use "http <path>" or "deps"`;
}

const problem = await probe(process.argv.slice(2)).catch((error: Error) => error.message);
if (problem) process.stderr.write(`unhealthy: ${problem}\n`);
process.exit(problem ? 1 : 0);
