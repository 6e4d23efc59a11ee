import { spawn } from "node:child_process";
import { findNatsServer, freePort } from "@mikrom/infra";
import { connect } from "@nats-io/transport-node";
import { expect, test } from "vitest";
import { NatsBackend } from "../src/nats-backend.ts";

test("the backend starts while JetStream does not answer, and is not ready until it does", async () => {
  // A NATS server of its own without JetStream: every JetStream request is refused, as in the
  // seconds after a restart when JetStream is "temporarily unavailable".
  const port = await freePort();
  const binary = findNatsServer();
  if (!binary) throw new Error("nats-server is not on PATH");
  const server = spawn(binary, ["-a", "127.0.0.1", "-p", String(port)], { stdio: "ignore" });
  try {
    const nc = await connect({ servers: `127.0.0.1:${port}`, waitOnFirstConnect: true, timeout: 10_000 });
    try {
      const backend = await NatsBackend.create(nc, `t${port}`);
      await expect(backend.ready()).rejects.toThrow(/JetStream/i);
    } finally {
      await nc.close();
    }
  } finally {
    server.kill("SIGTERM");
  }
});
