/**
 * HTTP/1.1 over a bare socket, one connection per request: what a fuzzer needs that fetch refuses
 * to send (a `..` segment as is, raw bytes in the path, NUL in a header, a malformed request line)
 * and what the server answers whatever it was, its parser's own errors included.
 */
import { connect } from "node:net";

export interface RawAnswer {
  status: number;
  headers: Map<string, string>;
  body: Buffer;
}

/** What came back: an answer, nothing within the deadline, or a connection that ended without one. */
export type RawOutcome =
  | { kind: "answer"; answer: RawAnswer }
  | { kind: "timeout"; headers?: Map<string, string>; status?: number }
  | { kind: "closed"; error?: string };

/**
 * Sends `request` (the whole of it, head and body, as bytes) and reads until the server closes the
 * connection, or until the head says the rest is a stream (`text/event-stream`), or `deadlineMs`.
 */
export function exchange(url: string, request: Buffer, deadlineMs: number): Promise<RawOutcome> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let settled = false;
    const socket = connect(Number(port), hostname);
    const finish = (outcome: RawOutcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(outcome);
    };
    const timer = setTimeout(() => {
      const head = parseHead(Buffer.concat(chunks));
      finish({ kind: "timeout", ...(head && { headers: head.headers, status: head.status }) });
    }, deadlineMs);
    socket.on("data", (d: Buffer) => {
      chunks.push(d);
      const head = parseHead(Buffer.concat(chunks));
      if (head?.headers.get("content-type")?.startsWith("text/event-stream"))
        finish({ kind: "answer", answer: { ...head, body: Buffer.alloc(0) } });
    });
    // A server that answers early (413) and closes may reset the connection while the body is still
    // being written: what it answered before that is still read.
    socket.on("error", (error) => {
      const answer = parseAnswer(Buffer.concat(chunks));
      finish(answer ? { kind: "answer", answer } : { kind: "closed", error: error.message });
    });
    socket.on("end", () => {
      const answer = parseAnswer(Buffer.concat(chunks));
      finish(answer ? { kind: "answer", answer } : { kind: "closed" });
    });
    // Not `end`: Node's server aborts a request whose client half-closed; `Connection: close` ends it.
    socket.on("connect", () => socket.write(request));
  });
}

function parseHead(
  raw: Buffer,
): { status: number; headers: Map<string, string>; bodyStart: number } | undefined {
  const end = raw.indexOf("\r\n\r\n");
  if (end < 0) return undefined;
  const [statusLine = "", ...lines] = raw.subarray(0, end).toString("latin1").split("\r\n");
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1]);
  if (!status) return undefined;
  const headers = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return { status, headers, bodyStart: end + 4 };
}

function parseAnswer(raw: Buffer): RawAnswer | undefined {
  const head = parseHead(raw);
  if (!head) return undefined;
  const rest = raw.subarray(head.bodyStart);
  const body = head.headers.get("transfer-encoding")?.includes("chunked") ? unchunk(rest) : rest;
  return { status: head.status, headers: head.headers, body };
}

function unchunk(raw: Buffer): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = raw.indexOf("\r\n", at);
    if (eol < 0) break;
    const size = Number.parseInt(raw.subarray(at, eol).toString("latin1"), 16);
    if (!size) break;
    parts.push(raw.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
  return Buffer.concat(parts);
}

/** A request as bytes: `target` and header values are written as latin1, one byte per char. */
export function requestBytes(
  method: string,
  target: string,
  headers: ReadonlyArray<readonly [string, string]>,
  body?: Buffer,
): Buffer {
  const lines = [`${method} ${target} HTTP/1.1`, "Host: 127.0.0.1", "Connection: close"];
  for (const [name, value] of headers) lines.push(`${name}: ${value}`);
  if (body) lines.push(`Content-Length: ${body.length}`);
  const head = Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1");
  return body ? Buffer.concat([head, body]) : head;
}
