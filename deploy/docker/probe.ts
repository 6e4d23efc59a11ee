/**
 * The container health check of Mikrom's images (the Dockerfile's HEALTHCHECK):
 *   node probe.ts <PORT_VARIABLE> <path>   GET http://127.0.0.1:$<PORT_VARIABLE><path> answers 2xx
 * The image names the variable because the services answer health on different ports: the gateway on
 * its API port (PORT, /health), a worker on its health port (HEALTH_PORT, /health/ready); the
 * environment every service shares sets HEALTH_PORT for the gateway too, where nothing listens.
 * Runs in the image with Node's type stripping.
 */
import { get } from "node:http";

const TIMEOUT_MS = 2_000;

/** The URL to ask, or what is wrong with the arguments or the environment. */
export function healthUrl(args: readonly string[], env: NodeJS.ProcessEnv): string | Error {
  const [variable, path] = args;
  if (!variable || !path?.startsWith("/") || args.length !== 2)
    return new Error(`usage: node probe.ts <PORT_VARIABLE> </path> (got: ${args.join(" ") || "nothing"})`);
  const port = env[variable];
  if (!port) return new Error(`${variable} is not set: no port to ask ${path} on`);
  return `http://127.0.0.1:${port}${path}`;
}

/** The status code `url` answers with; node:http, not fetch, whose first call loads undici in each probe. */
function statusOf(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = get(url, { timeout: TIMEOUT_MS }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.once("timeout", () => req.destroy(new Error(`${url}: no answer within ${TIMEOUT_MS} ms`)));
    req.once("error", reject);
  });
}

async function probe(args: readonly string[]): Promise<string | null> {
  const url = healthUrl(args, process.env);
  if (url instanceof Error) return url.message;
  const status = await statusOf(url);
  return status >= 200 && status < 300 ? null : `${url}: HTTP ${status}`;
}

if (import.meta.main) {
  const problem = await probe(process.argv.slice(2)).catch((error: Error) => error.message);
  if (problem) process.stderr.write(`unhealthy: ${problem}\n`);
  process.exit(problem ? 1 : 0);
}
