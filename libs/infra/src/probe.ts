import { connect } from "@nats-io/transport-node";
import pg from "pg";

/** How long a probe waits for a server to answer. */
export const PROBE_TIMEOUT_MS = 3_000;

/** `host:port` of a URL, for messages (never its user or password). */
export function serverAddress(url: string, defaultPort: number): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || defaultPort}`;
  } catch {
    return url;
  }
}

/** A URL with its password replaced by `***`, for messages. */
export function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]+@/, "//$1:***@");
}

/** The database the URL names, on the same server: `…/mikrom` → `…/postgres`. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

function codeOf(error: unknown): string | undefined {
  if (error instanceof AggregateError && error.errors.length > 0) return codeOf(error.errors[0]);
  const { code, cause } = error as { code?: unknown; cause?: unknown };
  if (typeof code === "string") return code;
  return cause ? codeOf(cause) : undefined;
}

function messageOf(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return messageOf(error.errors[0]);
  return error instanceof Error ? error.message : String(error);
}

/** What went wrong reaching a server, in words ("refused the connection"), and whether it is the server's absence. */
export interface Problem {
  /** Completes "PostgreSQL at host:port …". */
  readonly what: string;
  /** Nothing answers there (as opposed to a server that answered and said no). */
  readonly absent: boolean;
}

function networkProblem(code: string | undefined, message: string): Problem | undefined {
  if (code === "ECONNREFUSED") return { what: "refused the connection", absent: true };
  if (code === "ENOTFOUND" || code === "EAI_AGAIN")
    return { what: "has a host name that does not resolve", absent: true };
  if (code === "EHOSTUNREACH" || code === "ENETUNREACH")
    return { what: "cannot be reached from this machine", absent: true };
  if (code === "ETIMEDOUT" || /timeout/i.test(message))
    return { what: `did not answer within ${PROBE_TIMEOUT_MS / 1000} s`, absent: true };
  return undefined;
}

/**
 * Connects to the server at `url` (its `postgres` database: the one named may not exist yet) and
 * runs `SELECT 1`. Undefined when it answers; otherwise what went wrong, in words.
 */
export async function probePostgres(url: string): Promise<Problem | undefined> {
  const client = new pg.Client({
    connectionString: withDatabase(url, "postgres"),
    connectionTimeoutMillis: PROBE_TIMEOUT_MS,
  });
  client.on("error", () => {});
  try {
    await client.connect();
    await client.query("SELECT 1");
    return undefined;
  } catch (error) {
    const code = codeOf(error);
    const message = messageOf(error);
    const network = networkProblem(code, message);
    if (network) return network;
    const user = decodeURIComponent(new URL(url).username) || "(none)";
    if (code === "28P01") return { what: `rejected the password of user "${user}"`, absent: false };
    if (code === "28000") return { what: `refused user "${user}" (${message})`, absent: false };
    if (/terminated unexpectedly/i.test(message))
      return { what: "closed the connection without answering (is it PostgreSQL?)", absent: false };
    return { what: `answered with an error: ${message}`, absent: false };
  } finally {
    await client.end().catch(() => {});
  }
}

/** Connects to NATS at `url` and checks JetStream is on. Undefined when usable; otherwise what is wrong. */
export async function probeNats(url: string): Promise<Problem | undefined> {
  try {
    const nc = await connect({ servers: url, timeout: PROBE_TIMEOUT_MS, reconnect: false });
    try {
      if (!nc.info?.jetstream) return { what: "has JetStream off (nats-server needs -js)", absent: false };
      return undefined;
    } finally {
      await nc.close();
    }
  } catch (error) {
    const code = codeOf(error);
    const message = messageOf(error);
    const network = networkProblem(code, message);
    if (network) return network;
    if (/authorization|authentication/i.test(message))
      return { what: `refused the credentials in the URL (${message})`, absent: false };
    return { what: `answered with an error: ${message}`, absent: false };
  }
}
