import { JetStreamApiError } from "@nats-io/jetstream";
import { errors } from "@nats-io/transport-node";

/**
 * Errors that say a server is away, not that the request was wrong: retry later (the gateway's 503,
 * a query's `unavailable`, a service that waits at start instead of exiting).
 */
export function isUnavailable(error: unknown): boolean {
  return isTransient(error) || isStoreUnreachable(error) || isNatsGone(error);
}

/**
 * Errors worth retrying a publish or a request for: the server is restarting, JetStream is still
 * recovering, or the connection is between servers. A closed or draining connection is not one.
 */
export function isTransient(error: unknown): boolean {
  if (error instanceof errors.ClosedConnectionError || error instanceof errors.DrainingConnectionError) {
    return false;
  }
  if (error instanceof errors.TimeoutError || error instanceof errors.NoRespondersError) return true;
  if (error instanceof errors.RequestError || error instanceof errors.ConnectionError) return true;
  // A restarted server answers before it has recovered JetStream (the class is not exported).
  if (error instanceof Error && error.name === "JetStreamNotEnabled") return true;
  if (error instanceof JetStreamApiError) return error.code === 503 || error.status === 503;
  return false;
}

/** A connection that is closed or draining: this process is stopping, or lost NATS for good. */
function isNatsGone(error: unknown): boolean {
  return error instanceof errors.ClosedConnectionError || error instanceof errors.DrainingConnectionError;
}

/** Socket errors and PostgreSQL's connection classes: 08xxx, 57P01-57P03 (shutting down, starting up). */
const UNREACHABLE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "57P01",
  "57P02",
  "57P03",
  // too_many_connections: a server restarting under load refuses more sessions for a moment.
  "53300",
]);
const UNREACHABLE_MESSAGES =
  /^(Connection terminated|timeout exceeded when trying to connect|timeout expired|Client has encountered a connection error|Connection ended unexpectedly)/;

/** True when the error (or a cause of it) says a database server could not be reached or went away. */
export function isStoreUnreachable(error: unknown, depth = 0): boolean {
  if (!(error instanceof Error) || depth > 4) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string" && (UNREACHABLE_CODES.has(code) || code.startsWith("08"))) return true;
  if (UNREACHABLE_MESSAGES.test(error.message)) return true;
  if (error instanceof AggregateError && error.errors.some((e) => isStoreUnreachable(e, depth + 1)))
    return true;
  return isStoreUnreachable(error.cause, depth + 1);
}
