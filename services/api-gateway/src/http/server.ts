import type { Server } from "node:http";
import type { Duplex } from "node:stream";
import { serve } from "@hono/node-server";
import { problemBody } from "./problem.ts";

/** How long a client may take to send its headers, and its whole request, before a 408. */
export interface ClientTimeouts {
  readonly headersMs: number;
  readonly requestMs: number;
}

/** A slow client (one byte a second, as slowloris sends) holds a connection 10 s at the most. */
export const CLIENT_TIMEOUTS: ClientTimeouts = { headersMs: 10_000, requestMs: 30_000 };

/**
 * The gateway's HTTP server: Node's, with timeouts that end slow clients, and the errors its parser
 * answers itself (a malformed request line, headers too large, a request too slow) answered as
 * problem+json like every other error, each closing the connection.
 */
export function serveApi(
  options: { fetch: (request: Request) => Response | Promise<Response>; port: number; hostname?: string },
  onListening?: (info: { address: string; family: string; port: number }) => void,
  timeouts: ClientTimeouts = CLIENT_TIMEOUTS,
): Server {
  const server = serve(
    {
      ...options,
      serverOptions: {
        headersTimeout: timeouts.headersMs,
        requestTimeout: timeouts.requestMs,
        // How often Node looks for connections past those timeouts (its default is 30 s).
        connectionsCheckingInterval: Math.min(1_000, timeouts.headersMs),
      },
    },
    onListening,
  ) as Server;
  server.on("clientError", answerClientError);
  return server;
}

function answerClientError(error: Error & { code?: string }, socket: Duplex): void {
  if (error.code === "ECONNRESET" || !socket.writable) {
    socket.destroy();
    return;
  }
  const [status, detail] =
    error.code === "HPE_HEADER_OVERFLOW"
      ? [431, "Request headers are too large"]
      : error.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? [408, "The request was not received in time"]
        : [400, "Malformed HTTP request"];
  const body = JSON.stringify(problemBody(status, detail, ""));
  socket.end(
    `HTTP/1.1 ${status} ${problemBody(status, detail, "").title}\r\n` +
      "Content-Type: application/problem+json\r\n" +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      "Connection: close\r\n\r\n" +
      body,
  );
}
