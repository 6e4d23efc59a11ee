import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { QmpError, qmpExecute } from "../src/drivers/qemu/qmp.ts";

/** A QMP monitor as QEMU speaks it: greeting, capabilities negotiation, events between replies. */
function fakeMonitor(socketPath: string): Promise<Server> {
  const server = createServer((socket) => {
    const send = (message: unknown): void => {
      socket.write(`${JSON.stringify(message)}\n`);
    };
    send({ QMP: { version: { qemu: { major: 7, minor: 2, micro: 22 } }, capabilities: [] } });
    let buffered = "";
    socket.on("data", (chunk) => {
      buffered += chunk.toString("utf8");
      for (let i = buffered.indexOf("\n"); i >= 0; i = buffered.indexOf("\n")) {
        const { execute, id } = JSON.parse(buffered.slice(0, i)) as { execute: string; id: string };
        buffered = buffered.slice(i + 1);
        if (execute === "qmp_capabilities") send({ return: {}, id });
        else if (execute === "query-status") {
          send({ event: "RTC_CHANGE", data: { offset: 0 }, timestamp: { seconds: 0, microseconds: 0 } });
          send({ return: { status: "running", running: true }, id });
        } else if (execute === "quit") socket.destroy();
        else
          send({
            error: { class: "CommandNotFound", desc: `The command ${execute} has not been found` },
            id,
          });
      }
    });
  });
  return new Promise((resolve) => server.listen(socketPath, () => resolve(server)));
}

let dir: string;
let server: Server;
let socket: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "mikrom-qmp-"));
  socket = join(dir, "qmp.sock");
  server = await fakeMonitor(socket);
});
afterEach(async () => {
  await new Promise((resolve) => server.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

describe("the QMP client", () => {
  it("negotiates capabilities and returns the command's reply, skipping events", async () => {
    expect(await qmpExecute(socket, "query-status")).toEqual({ status: "running", running: true });
  });

  it("turns a QMP error into a QmpError with its class", async () => {
    const error = await qmpExecute(socket, "no-such-command").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QmpError);
    expect(error).toMatchObject({ errorClass: "CommandNotFound" });
  });

  it("takes a socket closed after quit as success only when told to", async () => {
    await expect(qmpExecute(socket, "quit", undefined, { closeIsSuccess: true })).resolves.toEqual({});
    await expect(qmpExecute(socket, "quit")).rejects.toThrow(/closed/);
  });

  it("fails when nothing listens on the socket", async () => {
    await expect(qmpExecute(join(dir, "nobody.sock"), "query-status")).rejects.toThrow(/ENOENT/);
  });
});
