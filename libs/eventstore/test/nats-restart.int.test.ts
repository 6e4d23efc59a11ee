import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Header } from "@mikrom/contracts";
import { describe, expect, test } from "@mikrom/testkit";
import { jetstream, jetstreamManager, StorageType } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { createRelay } from "../src/index.ts";
import { freePort, jetStreamPublisher, openTallyStore, waitFor } from "./support.ts";

const NATS_SERVER = "/usr/sbin/nats-server";

/** A nats-server of this test's own (never the shared one), on a free port, with its own store directory. */
async function startNats(port: number, storeDir: string): Promise<ChildProcess> {
  const server = spawn(NATS_SERVER, ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", storeDir], {
    stdio: "ignore",
  });
  await waitFor(`nats-server on port ${port}`, async () => {
    const probe = await connect({ servers: `127.0.0.1:${port}`, reconnect: false, timeout: 500 }).catch(
      () => null,
    );
    if (!probe) return false;
    const jetStreamOn = Boolean(probe.info?.jetstream);
    await probe.close();
    return jetStreamOn;
  });
  return server;
}

async function stopNats(server: ChildProcess): Promise<void> {
  if (server.exitCode !== null || server.signalCode !== null) return;
  const exited = once(server, "exit");
  server.kill("SIGTERM");
  await exited;
}

describe("the relay across a NATS restart", () => {
  test("keeps what it could not publish while NATS was down and sends it once NATS is back", async ({
    db,
  }) => {
    const port = await freePort();
    const storeDir = await mkdtemp(join(tmpdir(), "mikrom-nats-"));
    let server = await startNats(port, storeDir);
    const nc = await connect({
      servers: `127.0.0.1:${port}`,
      noAsyncTraces: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 100,
    });
    const store = await openTallyStore(db.url, { namespace: "restart" });
    const relay = createRelay({
      connectionString: db.url,
      publish: jetStreamPublisher(jetstream(nc), { timeoutMs: 1000 }),
      retry: { initialMs: 50, maxMs: 400 },
    });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: "RESTART", subjects: ["restart.>"], storage: StorageType.File });
      const count = async (): Promise<number> => (await jsm.streams.info("RESTART")).state.messages;
      const ids: string[] = [];
      const appendSome = async (from: number, to: number): Promise<void> => {
        for (let i = from; i < to; i++) {
          const { events } = await store.append(
            `tally-n${i}`,
            [{ type: "TallyOpened", data: { tallyId: `n${i}`, name: "n" } }],
            { expectedVersion: 0 },
          );
          ids.push(events[0]!.id);
        }
      };

      relay.start();
      await appendSome(0, 10);
      await waitFor("the first rows to reach JetStream", async () => (await count()) === 10);

      await stopNats(server);
      await appendSome(10, 20);
      await waitFor("the relay to fail publishing", () => relay.stats().failedPublishes > 0);
      expect(await store.outboxBacklog()).toBe(10);

      server = await startNats(port, storeDir);
      await waitFor(
        "the outbox to drain after the restart",
        async () => (await store.outboxBacklog()) === 0,
        20_000,
      );
      expect(await count()).toBe(20);
      const stored = await Promise.all(
        Array.from({ length: 20 }, (_, i) => jsm.streams.getMessage("RESTART", { seq: i + 1 })),
      );
      expect(stored.map((m) => m!.header.get(Header.MsgId)).sort()).toEqual([...ids].sort());
    } finally {
      await relay.stop();
      await store.close();
      await nc.close().catch(() => {});
      await stopNats(server);
      await rm(storeDir, { recursive: true, force: true });
    }
  });
});
