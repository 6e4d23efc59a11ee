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
