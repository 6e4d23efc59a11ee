import { describe, expect, test } from "@mikrom/testkit";
import { problemOf, type RunningGateway, type Session } from "./support/gateway.ts";
import { world } from "./support/world.ts";

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

async function createVm(gw: RunningGateway, who: Session, name: string): Promise<string> {
  const res = await gw.post("/api/v1/vms", { name }, who.auth);
  expect([201, 202]).toContain(res.status);
  return (await res.json()).vm_id;
}

const del = (gw: RunningGateway, who: Session, id: number) =>
  gw.fetch(`/api/v1/users/${id}`, { method: "DELETE", headers: who.auth });

describe("deleting a user deletes their VMs", () => {
  test("each of their VMs gets one DeleteVm, running or not; other users' VMs are left alone", async ({
    db,
    nats,
  }) => {
    const w = await world(db.url, nats);
    try {
      const { gw, vmService, a, b, root } = w;
      const mine = [await createVm(gw, a, "a-one"), await createVm(gw, a, "a-two")];
      const theirs = await createVm(gw, b, "b-one");
      await vmService.transition(mine[0]!, "VmBooted", "running");

      const gone = await del(gw, root, a.id);
      expect(gone.status).toBe(204);
      for (const vmId of mine) expect(vmService.vms.get(vmId)?.status).toBe("deleting");
      expect(vmService.vms.get(theirs)?.status).toBe("pending");
      expect(vmService.commandsSeen.filter((t) => t === "DeleteVm")).toHaveLength(2);
      expect((await gw.fetch("/api/v1/auth/me", { headers: a.auth })).status).toBe(401);
      expect((await del(gw, root, a.id)).status).toBe(404);
    } finally {
      await w.close();
    }
  });

  test("a deletion cut short is finished by sending it again, and sends no command twice", async ({
    db,
    nats,
  }) => {
    const w = await world(db.url, nats);
    try {
      const { gw, vmService, a, root } = w;
      const first = await createVm(gw, a, "kept");

      // vm-service's reads are away: nothing is deleted, but the user is already out.
      vmService.queriesAway = true;
      const cut = await problemOf(await del(gw, root, a.id));
      expect(cut.status).toBe(503);
      expect(cut.type).toContain("application/problem+json");
      vmService.queriesAway = false;
      expect((await gw.fetch("/api/v1/auth/me", { headers: a.auth })).status).toBe(403);
      expect(
        (await gw.post("/api/v1/auth/login", { email: a.email, password: "correct horse battery" })).status,
      ).toBe(403);
      expect(vmService.vms.get(first)?.status).toBe("pending");

      // A create of theirs still on its way (vm-service has not answered) cannot be deleted yet:
      // the deletes of what exists go out, and the answer says to retry.
      const lateUser = await gw.user("late");
      await createVm(gw, lateUser, "late-one");
      vmService.answering = false;
      const onItsWay = await createVm(gw, lateUser, "late-two");
      const retry = await problemOf(await del(gw, root, lateUser.id));
      expect(retry.status).toBe(409);
      expect(retry.type).toContain("application/problem+json");
      vmService.answering = true;
      await until(
        "the late create recorded",
        () => vmService.vms.get(onItsWay)?.status,
        (s) => s === "pending",
      );

      expect((await del(gw, root, a.id)).status).toBe(204);
      expect(vmService.vms.get(first)?.status).toBe("deleting");
      await until(
        "the late user's deletion finished",
        async () => (await del(gw, root, lateUser.id)).status,
        (s) => s === 204,
      );
      // 204 says every DeleteVm is sent, answered or carried by the ledger: under load one may still
      // be on its way to vm-service.
      await until(
        "every VM deleting",
        async () => [...vmService.vms.values()].map((vm) => vm.status),
        (statuses) => statuses.every((status) => status === "deleting"),
      );
      // One DeleteVm per VM, however many times the deletion ran (ids derived from user and VM;
      // a command not answered at once is delivered again under its own id, the ledger's re-send).
      const deletes = new Set(
        vmService.commandIds.filter((_, i) => vmService.commandsSeen[i] === "DeleteVm"),
      );
      expect(deletes.size).toBe(3);
    } finally {
      await w.close();
    }
  });
});
