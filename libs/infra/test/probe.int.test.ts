import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { findNatsServer, freePort, probeNats, probePostgres } from "../src/index.ts";

/** A loopback server that takes connections and never says a word. */
async function silentServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<import("node:net").Socket>();
  const server: Server = createServer((s) => sockets.add(s));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as { port: number }).port,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

describe("probes say what is wrong in words", () => {
  it("a closed port refused the connection, for either server, and nothing answers there", async () => {
    const port = await freePort();
    expect(await probePostgres(`postgres://postgres@127.0.0.1:${port}/mikrom`)).toEqual({
      what: "refused the connection",
      absent: true,
    });
    expect(await probeNats(`nats://127.0.0.1:${port}`)).toEqual({
      what: "refused the connection",
      absent: true,
    });
  });

  it("a server that takes the connection and says nothing did not answer in time", async () => {
    const silent = await silentServer();
    try {
      const [pg, nats] = await Promise.all([
        probePostgres(`postgres://postgres@127.0.0.1:${silent.port}/mikrom`),
        probeNats(`nats://127.0.0.1:${silent.port}`),
      ]);
      expect(pg).toEqual({ what: "did not answer within 3 s", absent: true });
      expect(nats).toEqual({ what: "did not answer within 3 s", absent: true });
    } finally {
      await silent.close();
    }
  });

  it("a nats-server without -js has JetStream off", async () => {
    const port = await freePort();
    const dir = await mkdtemp(join(tmpdir(), "mikrom-infra-probe-"));
    const child = spawn(findNatsServer()!, ["-a", "127.0.0.1", "-p", String(port), "-sd", dir], {
      stdio: "ignore",
    });
    try {
      let problem = await probeNats(`nats://127.0.0.1:${port}`);
      for (let i = 0; i < 50 && problem?.absent; i++) {
        await new Promise((r) => setTimeout(r, 100));
        problem = await probeNats(`nats://127.0.0.1:${port}`);
      }
      expect(problem).toEqual({ what: "has JetStream off (nats-server needs -js)", absent: false });
    } finally {
      child.kill("SIGKILL");
      await rm(dir, { recursive: true, force: true });
    }
  });
});
