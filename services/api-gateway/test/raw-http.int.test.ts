/**
 * What Node's HTTP parser answers before any route runs (a malformed request, headers too large, a
 * client too slow), read off a raw socket: problem+json like every other error, and the connection
 * closed, so a slow client holds a connection only as long as the timeouts say.
 */
import { connect } from "node:net";
import { describe, expect, test } from "@mikrom/testkit";
import { startGateway } from "./support/gateway.ts";

/** Sends `chunks` (waiting `gapMs` between them) and reads until the server closes; how many it sent. */
function exchange(url: string, chunks: string[], gapMs = 0): Promise<{ text: string; sent: number }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    let sent = 0;
    const socket = connect(Number(port), hostname);
    let text = "";
    socket.setEncoding("utf8");
    socket.on("data", (d) => {
      text += d;
    });
    socket.on("error", reject);
    socket.on("close", () => resolve({ text, sent }));
    socket.on("connect", async () => {
      for (const chunk of chunks) {
        if (socket.destroyed) return;
        socket.write(chunk);
        sent++;
        if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
      }
    });
  });
}

function problemOf(raw: string): { status: number; headers: string; body: Record<string, unknown> } {
  const [head = "", body = ""] = raw.split("\r\n\r\n");
  return { status: Number(head.split(" ")[1]), headers: head.toLowerCase(), body: JSON.parse(body) };
}

describe("the HTTP server's own errors", () => {
  test("a malformed request and oversized headers are answered as problem+json, and the connection closes", async ({
    db,
  }) => {
    const gw = await startGateway(db.url);
    try {
      const malformed = problemOf((await exchange(gw.url, ["NOT A REQUEST\r\n\r\n"])).text);
      expect(malformed.status).toBe(400);
      expect(malformed.headers).toContain("content-type: application/problem+json");
      expect(malformed.headers).toContain("connection: close");
      expect(malformed.body).toMatchObject({
        status: 400,
        detail: "Malformed HTTP request",
        error: "Malformed HTTP request",
      });

      const big = `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(64 * 1024)}\r\n\r\n`;
      const tooLarge = problemOf((await exchange(gw.url, [big])).text);
      expect(tooLarge.status).toBe(431);
      expect(tooLarge.body).toMatchObject({ status: 431, title: "Request Header Fields Too Large" });

      // The server still serves everyone else.
      expect((await gw.fetch("/health")).status).toBe(200);
    } finally {
      await gw.close();
    }
  });

  test("a client that sends its headers a byte at a time is answered 408 and cut off at the headers timeout", async ({
    db,
  }) => {
    const gw = await startGateway(db.url, { clientTimeouts: { headersMs: 1_000, requestMs: 2_000 } });
    try {
      const slow = `GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ${"a".repeat(60)}`;
      const { text, sent } = await exchange(gw.url, [...slow], 100);
      const answer = problemOf(text);
      expect(answer.status).toBe(408);
      expect(answer.body).toMatchObject({ status: 408, detail: "The request was not received in time" });
      // Cut off while still trickling: the server closed before the client had sent its headers.
      expect(sent).toBeLessThan(slow.length);
    } finally {
      await gw.close();
    }
  });
});

/** Writes the whole request at once and never waits to read, as the fuzzer's client does; what came back. */
function sendAtOnce(url: string, request: Buffer): Promise<{ text: string; error?: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    let text = "";
    let error: string | undefined;
    const socket = connect(Number(port), hostname);
    socket.setEncoding("latin1");
    socket.on("data", (d) => {
      text += d;
    });
    socket.on("error", (e) => {
      error = e.message;
    });
    socket.on("close", () => resolve({ text, ...(error && { error }) }));
    socket.on("connect", () => socket.write(request));
  });
}

describe("an answer given before the body is read", () => {
  test("reaches a client still writing its body, which is not reset: the server reads on until the client is done", async ({
    db,
  }) => {
    const gw = await startGateway(db.url, { config: { bodyLimitBytes: 1024 } });
    try {
      const body = Buffer.alloc(4_000_000, 0x61);
      const post = (target: string) =>
        Buffer.concat([
          Buffer.from(
            `POST ${target} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`,
            "latin1",
          ),
          body,
        ]);
      // Refused on its declared length by the gateway, and for raw bytes in its target by Node's parser.
      const cases = [
        { request: post("/api/v1/vms"), status: "HTTP/1.1 413 Payload Too Large" },
        { request: post("/api/v1/vms?page=\u00c0\u00af"), status: "HTTP/1.1 400 Bad Request" },
      ];
      // Closed both ways as soon as the answer is written, the connection is reset by the server's
      // kernel while the client still writes: the write fails (EPIPE), and the answer is lost when
      // the client had not read it yet.
      for (let i = 0; i < 10; i++) {
        for (const { request, status } of cases) {
          const { text, error } = await sendAtOnce(gw.url, request);
          expect({ attempt: i, status: text.split("\r\n")[0], error }).toEqual({
            attempt: i,
            status,
            error: undefined,
          });
        }
      }
    } finally {
      await gw.close();
    }
  });
});
