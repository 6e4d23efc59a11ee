import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { names } from "@mikrom/contracts";
import { describe, expect, test } from "@mikrom/testkit";
import { AckPolicy } from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import { sql } from "kysely";
import { openTallyStore, waitFor } from "./support.ts";

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

interface Child {
  readonly process: ChildProcess;
  readonly lines: string[];
  /** Resolves with the first line matching, or rejects when the process exits first. */
  line(match: RegExp, timeoutMs?: number): Promise<string>;
  exited: Promise<unknown>;
}

function start(script: string, env: Record<string, string>): Child {
  const child = spawn(process.execPath, [fixture(script)], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: string[] = [];
  const exited = once(child, "exit");
  createInterface({ input: child.stdout! }).on("line", (line) => lines.push(line));
  const stderr: string[] = [];
  createInterface({ input: child.stderr! }).on("line", (line) => stderr.push(line));
  return {
    process: child,
    lines,
    exited,
    line: (match, timeoutMs = 60_000) =>
      waitFor(
        `${script} to print ${match}`,
        () => {
          const found = lines.find((l) => match.test(l));
          if (found) return found;
          if (child.exitCode !== null || child.signalCode !== null) {
            throw new Error(`${script} exited (${child.exitCode ?? child.signalCode}): ${stderr.join("\n")}`);
          }
          return undefined;
        },
        timeoutMs,
      ),
  };
}

async function kill(child: Child): Promise<void> {
  if (child.process.exitCode === null && child.process.signalCode === null) child.process.kill("SIGKILL");
  await child.exited;
}

describe("crashes", () => {
  test("processes killed between commit and publish, and between commit and ack, deliver every event once in effect", async ({
    db,
    nats,
  }) => {
    const n = names(nats.namespace);
    await nats.jsm.streams.add({ name: n.streams.events, subjects: [n.allEvents] });
    await nats.jsm.consumers.add(n.streams.events, {
      durable_name: "effects",
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(1000),
      max_deliver: 10,
    });
    const store = await openTallyStore(db.url, { namespace: nats.namespace });
    await sql`CREATE TABLE effects (event_id uuid PRIMARY KEY, times integer NOT NULL)`.execute(store.db);
    const env = { DATABASE_URL: db.url, NATS_URL: nats.url, NAMESPACE: nats.namespace };
    const consumerEnv = { ...env, STREAM: n.streams.events, DURABLE: "effects" };
    const children: Child[] = [];
    const count = async (): Promise<number> => (await nats.jsm.streams.info(n.streams.events)).state.messages;
    try {
      // 1. Commit 30 events; five reach JetStream; SIGKILL before any row is marked sent.
      //    Meanwhile a consumer commits three effects and dies before acknowledging the third.
      const producer = start("crash-producer.ts", { ...env, MODE: "produce" });
      const first = start("crash-consumer.ts", { ...consumerEnv, DIE_AFTER: "3" });
      children.push(producer, first);
      await producer.line(/^published 5$/);
      await kill(producer);
      expect(producer.lines).toContain("committed 30");
      expect(await store.outboxBacklog()).toBe(30);
      expect(await count()).toBe(5);
      await first.exited;
      expect(first.process.signalCode).toBe("SIGKILL");
      expect(first.lines.filter((l) => l.startsWith("applied"))).toHaveLength(3);

      // 2. A restarted relay sends everything (JetStream drops the five it already has); a restarted
      //    consumer gets the unacknowledged message again, and every other one.
      const relay = start("crash-producer.ts", { ...env, MODE: "relay" });
      const second = start("crash-consumer.ts", consumerEnv);
      children.push(relay, second);
      await waitFor("the outbox to drain", async () => (await store.outboxBacklog()) === 0, 20_000);
      expect(await count()).toBe(30);
      await waitFor(
        "every message to be handled and acknowledged",
        async () => {
          const info = await nats.jsm.consumers.info(n.streams.events, "effects");
          const { rows } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM effects`.execute(store.db);
          return rows[0]!.n === 30 && info.num_pending === 0 && info.num_ack_pending === 0;
        },
        20_000,
      );

      const { rows } = await sql<{ event_id: string; times: number }>`
        SELECT e.event_id::text, coalesce(f.times, 0) AS times
        FROM events e LEFT JOIN effects f USING (event_id) ORDER BY e.global_position`.execute(store.db);
      expect(rows).toHaveLength(30);
      expect(rows.filter((r) => r.times !== 1)).toEqual([]);
      expect(second.lines.filter((l) => l.startsWith("duplicate")).length).toBeGreaterThanOrEqual(1);
    } finally {
      await Promise.all(children.map(kill));
      await store.close();
    }
  }, 60_000);
});
