/**
 * `POST /api/v1/vms` answers per second and p50/p99 at 64 connections, beside a bare Hono route
 * that only publishes to JetStream, in the same run. The gateway's path: rate limit, JWT + user
 * lookup in PostgreSQL, zod, the command recorded in PostgreSQL, JetStream publish, wait for the
 * outcome event, JSON. vm-service is played by the test stand-in in a process of its own (it answers
 * at once): in this one its work was a sixth of the CPU counted per request. The load client runs in
 * this process for both phases; "CPU ms/req" is this process's CPU (client + server) per answer,
 * steadier than req/s on a noisy 2-core box: read the ratio, and compare runs made back to back.
 *
 * node_modules/.bin/node bench/api-gateway.bench.ts [seconds per phase] [connections]
 */
import { spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { names as namesFor, VmName } from "@mikrom/contracts";
import { openDatabase } from "@mikrom/runtime";
import { setLogDestination } from "@mikrom/telemetry";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { Hono } from "hono";
import pg from "pg";
import { z } from "zod";
import { createApp } from "../services/api-gateway/src/app.ts";
import { NatsBackend } from "../services/api-gateway/src/nats-backend.ts";
import type { GatewayDb } from "../services/api-gateway/src/store/db.ts";
import { migrate } from "../services/api-gateway/src/store/migrations.ts";

setLogDestination({ write: () => true });

const SECONDS = Number(process.argv[2] ?? 6);
const CONNECTIONS = Number(process.argv[3] ?? 64);
const WARMUP_MS = 1_500;
const serverUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const natsUrl = process.env.NATS_URL ?? "nats://127.0.0.1:4222";

const namespace = `bench_gw_${randomBytes(4).toString("hex")}`;
async function admin(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  await client.query(sql).finally(() => client.end());
}
await admin(`CREATE DATABASE "${namespace}"`);
const databaseUrl = new URL(serverUrl);
databaseUrl.pathname = `/${namespace}`;
const database = {
  url: databaseUrl.toString(),
  drop: () => admin(`DROP DATABASE IF EXISTS "${namespace}" WITH (FORCE)`),
};
const nc = await connect({ servers: natsUrl, noAsyncTraces: true, name: "api-gateway bench" });
const jsm = await jetstreamManager(nc);
const names = namesFor(namespace);

function listen(
  fetchHandler: (req: Request) => Response | Promise<Response>,
): Promise<{ url: string; server: Server }> {
  const server = serve({ fetch: fetchHandler, port: 0, hostname: "127.0.0.1" }) as Server;
  return new Promise((resolve) =>
    server.once("listening", () =>
      resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server }),
    ),
  );
}

interface Result {
  name: string;
  requests: number;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  cpuMsPerRequest: number;
}

/** CONNECTIONS workers, each sending one request after another on a keep-alive connection, for SECONDS. */
async function load(name: string, send: () => Promise<number>, expected: number): Promise<Result> {
  const latencies: number[] = [];
  let errors = 0;
  let measuring = false;
  const warmupEnds = Date.now() + WARMUP_MS;
  const ends = warmupEnds + SECONDS * 1000;
  let cpu = process.cpuUsage();
  setTimeout(() => {
    measuring = true;
    cpu = process.cpuUsage();
  }, WARMUP_MS);
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (Date.now() < ends) {
        const started = performance.now();
        const status = await send().catch(() => 0);
        if (!measuring) continue;
        latencies.push(performance.now() - started);
        if (status !== expected) errors++;
      }
    }),
  );
  const { user, system } = process.cpuUsage(cpu);
  latencies.sort((a, b) => a - b);
  const at = (q: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? Number.NaN;
  return {
    name,
    requests: latencies.length,
    rps: latencies.length / SECONDS,
    p50: at(0.5),
    p99: at(0.99),
    errors,
    cpuMsPerRequest: (user + system) / 1000 / latencies.length,
  };
}

try {
  const vmService = spawn(
    process.execPath,
    [new URL("./fake-vm-service.ts", import.meta.url).pathname, namespace],
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  const standInOutput: string[] = [];
  vmService.stdout.setEncoding("utf8").on("data", (chunk: string) => standInOutput.push(chunk));
  await new Promise<void>((resolve, reject) => {
    vmService.stdout.once("data", () => resolve());
    vmService.once("exit", (code) => reject(new Error(`the vm-service stand-in exited (${code})`)));
  });
  const db = openDatabase<GatewayDb>(database.url, { max: 16 });
  await migrate(db);
  const { app, accounts, commands } = createApp({
    config: {
      jwtSecret: "bench-secret-bench-secret-bench-secret!!",
      rateLimit: { windowMs: 60_000, perIp: 1e9, perUser: 1e9, authPerIp: 1e9 },
      corsOrigins: ["*"],
      commandTimeoutMs: 5_000,
      queryTimeoutMs: 5_000,
      bodyLimitBytes: 1024 * 1024,
      sseHeartbeatMs: 15_000,
      trustProxy: [],
      login: {
        freeFailuresPerAccount: 5,
        freeFailuresPerIp: 20,
        baseBlockSeconds: 1,
        maxBlockSeconds: 900,
        failureWindowSeconds: 86_400,
      },
      concurrency: { ssePerUser: 10, waitsPerUser: 20 },
      registration: "open",
    },
    db,
    backend: await NatsBackend.create(nc, namespace),
  });
  // Outcomes are heard (and commands re-sent) only once started, as the gateway service does.
  commands.start();
  const user = await accounts.register({ email: "bench@example.com", password: "bench password" });
  const { access_token } = await accounts.issue(user);

  // The floor: parse + validate the same body, one awaited JetStream publish with a message id.
  const js = jetstream(nc);
  const bare = new Hono();
  const BareBody = z.object({ name: VmName, vcpu_count: z.int().min(1).max(32).default(1) });
  bare.post("/bare", async (c) => {
    const body = BareBody.parse(await c.req.json());
    const id = randomUUID();
    await js.publish(names.command("bare", "create"), JSON.stringify({ id, ...body }), { msgID: id });
    return c.json({ id }, 201);
  });

  const gateway = await listen(app.fetch);
  const floor = await listen(bare.fetch);
  const body = JSON.stringify({ name: "bench-vm", vcpu_count: 1, memory_mb: 256 });
  const post = (url: string, headers: Record<string, string>) => async () => {
    const res = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", ...headers },
      body,
    });
    await res.arrayBuffer();
    return res.status;
  };

  const bareResult = await load("bare Hono + JetStream publish", post(`${floor.url}/bare`, {}), 201);
  const gatewayResult = await load(
    "POST /api/v1/vms (gateway)",
    post(`${gateway.url}/api/v1/vms`, { Authorization: `Bearer ${access_token}` }),
    201,
  );

  process.stdout.write(
    `api-gateway: ${CONNECTIONS} connections, ${SECONDS} s per phase after ${WARMUP_MS} ms warm-up (loopback)\n`,
  );
  process.stdout.write(
    `${"phase".padEnd(34)}${"req/s".padStart(9)}${"p50 ms".padStart(9)}${"p99 ms".padStart(9)}${"requests".padStart(10)}${"errors".padStart(8)}${"CPU ms/req".padStart(12)}\n`,
  );
  for (const r of [bareResult, gatewayResult]) {
    process.stdout.write(
      `${r.name.padEnd(34)}${r.rps.toFixed(0).padStart(9)}${r.p50.toFixed(1).padStart(9)}${r.p99.toFixed(1).padStart(9)}${String(r.requests).padStart(10)}${String(r.errors).padStart(8)}${r.cpuMsPerRequest.toFixed(2).padStart(12)}\n`,
    );
  }

  gateway.server.closeAllConnections();
  floor.server.closeAllConnections();
  gateway.server.close();
  floor.server.close();
  await commands.stop();
  const exited = new Promise((resolve) => vmService.once("exit", resolve));
  vmService.stdin.end();
  await exited;
  process.stdout.write(
    `gateway / bare: ${(gatewayResult.rps / bareResult.rps).toFixed(2)} of the throughput; VMs recorded by the stand-in: ${standInOutput.join("").split("\n").at(-2)}\n`,
  );
  await db.destroy();
} finally {
  for (const stream of Object.values(names.streams)) await jsm.streams.delete(stream).catch(() => false);
  await nc.close();
  await database.drop();
}
