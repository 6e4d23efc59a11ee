import type { Server } from "node:http";
import type { Socket } from "node:net";
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

/** How long a connection the server ends keeps reading what its client still sends. */
const LINGER_MS = 2_000;

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
  // Node ends a connection after an answer that says `Connection: close` (a 413, or what the client
  // asked for) with destroySoon, which closes both ways as soon as the answer is written.
  server.on("connection", (socket: Socket) => {
    socket.destroySoon = () => closeGracefully(socket);
  });
  return server;
}

/** Connections being ended in stages: the parser's errors on the bytes they still read are dropped. */
const closing = new WeakSet<Duplex>();

/**
 * Ends the connection in stages (RFC 9112 §9.6): the answer and a FIN go out, and what the client
 * still sends (the rest of a body answered early) is read and dropped until it closes its side, or
 * LINGER_MS. Closing with bytes unread, or with more on their way, makes the kernel reset the
 * connection, and a client still writing its body then loses the answer it had not read yet.
 */
function closeGracefully(socket: Duplex, last?: string): void {
  if (socket.destroyed || closing.has(socket)) return;
  closing.add(socket);
  socket.end(last);
  const timer = setTimeout(() => socket.destroy(), LINGER_MS).unref();
  socket.once("close", () => clearTimeout(timer));
  socket.resume();
}

function answerClientError(error: Error & { code?: string }, socket: Duplex): void {
  if (closing.has(socket)) return;
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
  closeGracefully(
    socket,
    `HTTP/1.1 ${status} ${problemBody(status, detail, "").title}\r\n` +
      "Content-Type: application/problem+json\r\n" +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      "Connection: close\r\n\r\n" +
      body,
  );
}
