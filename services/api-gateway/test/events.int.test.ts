import { expect, test } from "@mikrom/testkit";
import { openSse, type SseClient } from "./support/sse.ts";
import { world } from "./support/world.ts";

async function take(
  client: SseClient,
  n: number,
): Promise<Array<{ id: number; vm_id: string; type: string; status?: string }>> {
  const out = [];
  for (let i = 0; i < n; i++) {
    const e = await client.next();
    out.push({ id: Number(e.id), ...JSON.parse(e.data) });
  }
  return out;
}

test("a user's event stream carries only their own VMs; the superuser's carries all", async ({
  db,
  nats,
}) => {
  const w = await world(db.url, nats);
  const streamA = await openSse(`${w.gw.url}/api/v1/events/vms?token=${w.a.token}`);
  const streamRoot = await openSse(`${w.gw.url}/api/v1/events/vms`, w.root.auth);
  try {
    expect(streamA.status).toBe(200);
    expect(streamA.contentType).toContain("text/event-stream");
    await Promise.all([streamA.comment("connected"), streamRoot.comment("connected")]);

    const vmB = await (await w.gw.post("/api/v1/vms", { name: "b-vm" }, w.b.auth)).json();
    const vmA = await (await w.gw.post("/api/v1/vms", { name: "a-vm" }, w.a.auth)).json();
    await w.vmService.transition(vmB.vm_id, "VmRunning", "running", { hostId: "h1", ipAddress: "10.0.0.2" });
    await w.vmService.transition(vmA.vm_id, "VmRunning", "running", { hostId: "h1", ipAddress: "10.0.0.3" });

    const seenA = await take(streamA, 2);
    expect(seenA.map((e) => [e.vm_id, e.type, e.status])).toEqual([
      [vmA.vm_id, "VmCreated", "pending"],
      [vmA.vm_id, "VmRunning", "running"],
    ]);
    const seenRoot = await take(streamRoot, 4);
    expect(seenRoot.map((e) => e.vm_id)).toEqual([vmB.vm_id, vmA.vm_id, vmB.vm_id, vmA.vm_id]);
    // Ids are stream sequences: increasing, and the same event has the same id on every stream.
    expect(seenRoot[1]!.id).toBe(seenA[0]!.id);
    expect(seenRoot.map((e) => e.id)).toEqual([...seenRoot.map((e) => e.id)].sort((x, y) => x - y));
  } finally {
    streamA.close();
    streamRoot.close();
    await w.close();
  }
});

test("reconnecting with Last-Event-ID resumes after it: no gap, no duplicate", async ({ db, nats }) => {
  const w = await world(db.url, nats);
  try {
    const first = await openSse(`${w.gw.url}/api/v1/events/vms`, w.a.auth);
    await first.comment("connected");
    const vm = await (await w.gw.post("/api/v1/vms", { name: "resume" }, w.a.auth)).json();
    await w.vmService.transition(vm.vm_id, "VmProvisioning", "provisioning", {
      hostId: "h1",
      ipAddress: "10.0.0.4",
    });
    const before = await take(first, 2);
    first.close();

    // While disconnected, the VM moves on (and another user's VM too, which must stay invisible).
    await w.vmService.transition(vm.vm_id, "VmRunning", "running", { hostId: "h1", ipAddress: "10.0.0.4" });
    await w.gw.post("/api/v1/vms", { name: "other" }, w.b.auth);
    await w.vmService.transition(vm.vm_id, "VmStopped", "stopped");

    const resumed = await openSse(`${w.gw.url}/api/v1/events/vms`, {
      ...w.a.auth,
      "Last-Event-ID": String(before[1]!.id),
    });
    const after = await take(resumed, 2);
    resumed.close();
    expect(before.map((e) => e.type)).toEqual(["VmCreated", "VmProvisioning"]);
    expect(after.map((e) => e.type)).toEqual(["VmRunning", "VmStopped"]);
    expect(after[0]!.id).toBeGreaterThan(before[1]!.id);

    const full = await openSse(`${w.gw.url}/api/v1/events/vms`, { ...w.a.auth, "Last-Event-ID": "0" });
    const all = await take(full, 4);
    full.close();
    expect(all.map((e) => e.id)).toEqual([...before, ...after].map((e) => e.id));
  } finally {
    await w.close();
  }
});

test("a stream resuming while others are open reads the gap on its own, then joins them: no gap, no duplicate", async ({
  db,
  nats,
}) => {
  const w = await world(db.url, nats);
  const keeper = await openSse(`${w.gw.url}/api/v1/events/vms`, w.root.auth);
  try {
    await keeper.comment("connected");
    const vm = await (await w.gw.post("/api/v1/vms", { name: "joins" }, w.a.auth)).json();
    const created = (await take(keeper, 1))[0]!;
    await w.vmService.transition(vm.vm_id, "VmProvisioning", "provisioning", {
      hostId: "h1",
      ipAddress: "10.0.0.6",
    });
    await w.vmService.transition(vm.vm_id, "VmRunning", "running", { hostId: "h1", ipAddress: "10.0.0.6" });
    await take(keeper, 2);

    // The shared reader is past all three: the resumed stream reads the two after VmCreated itself.
    const resumed = await openSse(`${w.gw.url}/api/v1/events/vms`, {
      ...w.a.auth,
      "Last-Event-ID": String(created.id),
    });
    try {
      await w.vmService.transition(vm.vm_id, "VmStopped", "stopped");
      const seen = await take(resumed, 3);
      expect(seen.map((e) => e.type)).toEqual(["VmProvisioning", "VmRunning", "VmStopped"]);
      expect(seen.map((e) => e.id)).toEqual([...seen.map((e) => e.id)].sort((x, y) => x - y));
      expect(seen[0]!.id).toBeGreaterThan(created.id);
      // Nothing more: the stop came once, from the shared reader, not again from its own.
      await w.vmService.transition(vm.vm_id, "VmDeleteRequested", "deleting");
      expect((await take(resumed, 1))[0]!.type).toBe("VmDeleteRequested");
    } finally {
      resumed.close();
    }
  } finally {
    keeper.close();
    await w.close();
  }
});

test("an event sent again after a fault reaches a stream once; the next one still arrives", async ({
  db,
  nats,
}) => {
  const w = await world(db.url, nats);
  const stream = await openSse(`${w.gw.url}/api/v1/events/vms`, w.a.auth);
  try {
    await stream.comment("connected");
    const vm = await (await w.gw.post("/api/v1/vms", { name: "again" }, w.a.auth)).json();
    await w.vmService.transition(vm.vm_id, "VmRunning", "running", { hostId: "h1", ipAddress: "10.0.0.5" });
    await w.vmService.sendAgain(vm.vm_id);
    await w.vmService.sendAgain(vm.vm_id);
    await w.vmService.transition(vm.vm_id, "VmStopped", "stopped");
    const seen = await take(stream, 3);
    expect(seen.map((e) => e.type)).toEqual(["VmCreated", "VmRunning", "VmStopped"]);
    // The copies are in the stream (the ids skip over them): the feed, not JetStream, dropped them.
    expect(seen[2]!.id - seen[1]!.id).toBe(3);
  } finally {
    stream.close();
    await w.close();
  }
});

test("a stream that is shown none of a busy stream's events still moves its Last-Event-ID past them", async ({
  db,
  nats,
}) => {
  const w = await world(db.url, nats);
  const stream = await openSse(`${w.gw.url}/api/v1/events/vms`, w.a.auth);
  try {
    await stream.comment("connected");
    const other = await (await w.gw.post("/api/v1/vms", { name: "busy" }, w.b.auth)).json();
    for (let i = 0; i < 300; i++) {
      await w.vmService.transition(
        other.vm_id,
        i % 2 ? "VmRunning" : "VmStopped",
        i % 2 ? "running" : "stopped",
      );
    }
    // An id-only block: no data, so an EventSource fires nothing, but resumes after it.
    const marker = await stream.next();
    expect(marker.data).toBe("");
    expect(Number(marker.id)).toBeGreaterThan(255);
    const mine = await (await w.gw.post("/api/v1/vms", { name: "mine" }, w.a.auth)).json();
    const next = await stream.next();
    expect(JSON.parse(next.data).vm_id).toBe(mine.vm_id);
    expect(Number(next.id)).toBeGreaterThan(Number(marker.id));
  } finally {
    stream.close();
    await w.close();
  }
});

test("an idle event stream sends heartbeats; a malformed Last-Event-ID is a 422", async ({ db, nats }) => {
  const w = await world(db.url, nats, { sseHeartbeatMs: 100 });
  try {
    const idle = await openSse(`${w.gw.url}/api/v1/events/vms`, w.a.auth);
    await idle.comment("heartbeat");
    idle.close();
    const bad = await fetch(`${w.gw.url}/api/v1/events/vms`, {
      headers: { ...w.a.auth, "Last-Event-ID": "yesterday" },
    });
    expect(bad.status).toBe(422);
    expect(bad.headers.get("content-type")).toContain("application/problem+json");
  } finally {
    await w.close();
  }
});
