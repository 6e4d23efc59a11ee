import { describe, expect, test } from "@mikrom/testkit";
import pg from "pg";
import { NatsBackend } from "../src/nats-backend.ts";
import { startGateway } from "./support/gateway.ts";
import { FakeVmService } from "./support/vm-service.ts";

async function ledger(url: string, vmId: string): Promise<{ attempts: number; outcome: string | null }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query(
      "SELECT attempts, outcome FROM commands WHERE entity_id = $1 AND type = 'CreateVm'",
      [vmId],
    );
    return rows[0];
  } finally {
    await client.end();
  }
}

async function until<T>(
  what: string,
  fn: () => Promise<T> | T,
  ok: (v: T) => boolean,
  ms = 15_000,
): Promise<T> {
  for (const deadline = Date.now() + ms; ; ) {
    const v = await fn();
    if (ok(v)) return v;
    if (Date.now() > deadline)
      throw new Error(`${what}: not seen within ${ms} ms (last: ${JSON.stringify(v)})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("commands the gateway answered for", () => {
  test("a command lost after its 202 is sent again, with the same id, until its outcome arrives", async ({
    db,
    nats,
  }) => {
    // JetStream's own duplicate window (2 min) still holds the first copy: the re-send is marked sent
    // again (Mikrom-Resend), so the stream takes it, and the receiver sees the same message id.
    const vmService = await FakeVmService.start(nats.nc, nats.namespace);
    const backend = await NatsBackend.create(nats.nc, nats.namespace);
    const gw = await startGateway(db.url, { backend, config: { commandTimeoutMs: 500 } });
    try {
      const a = await gw.user("a");
      // The command is taken and never answered: as good as lost.
      vmService.answering = false;
      const created = await gw.post("/api/v1/vms", { name: "kept-promise" }, a.auth);
      expect(created.status).toBe(202);
      const { vm_id } = await created.json();
      expect(await ledger(db.url, vm_id)).toMatchObject({ outcome: null });
      vmService.answering = true;

      const vm = await until(
        "the VM recorded by vm-service",
        async () => (await gw.fetch(`/api/v1/vms/${vm_id}`, { headers: a.auth })).json(),
        // biome-ignore lint/suspicious/noExplicitAny: a JSON body
        (body: any) => body.status === "pending" && vmService.vms.has(vm_id),
      );
      expect(vm).toMatchObject({ vm_id, name: "kept-promise" });
      // Sent twice, the same message both times.
      expect(vmService.commandsSeen.filter((t) => t === "CreateVm")).toHaveLength(2);
      expect(new Set(vmService.commandIds).size).toBe(1);
      // Settled: no more re-sends.
      const settled = await until(
        "the command settled",
        () => ledger(db.url, vm_id),
        (row) => row.outcome === "accepted",
      );
      await new Promise((r) => setTimeout(r, 2_500));
      expect((await ledger(db.url, vm_id)).attempts).toBe(settled.attempts);
      expect(vmService.commandsSeen.filter((t) => t === "CreateVm")).toHaveLength(2);
    } finally {
      await gw.close();
      await vmService.stop();
    }
  });

  test("a create refused after its 202 reads as 410 Gone with the reason, never 404", async ({
    db,
    nats,
  }) => {
    const vmService = await FakeVmService.start(nats.nc, nats.namespace, { duplicateWindowMs: 500 });
    const backend = await NatsBackend.create(nats.nc, nats.namespace);
    const gw = await startGateway(db.url, { backend, config: { commandTimeoutMs: 500 } });
    try {
      const a = await gw.user("a");
      vmService.answering = false;
      const created = await gw.post("/api/v1/vms", { name: "too-many" }, a.auth);
      expect(created.status).toBe(202);
      const { vm_id } = await created.json();
      // The re-send reaches a vm-service that refuses it.
      vmService.refuseCreates = "VM limit reached: at most 0 VMs per user";
      vmService.answering = true;
      const res = await until(
        "the refusal seen",
        () => gw.fetch(`/api/v1/vms/${vm_id}`, { headers: a.auth }),
        (r) => r.status !== 200,
      );
      expect(res.status).toBe(410);
      expect(await res.json()).toMatchObject({ detail: expect.stringMatching(/VM limit reached/) });
    } finally {
      await gw.close();
      await vmService.stop();
    }
  });
});
