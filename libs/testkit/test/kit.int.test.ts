import { Header, names, parse, VmCreated } from "@mikrom/contracts";
import { AckPolicy } from "@nats-io/jetstream";
import { headers } from "@nats-io/transport-node";
import pg from "pg";
import { describe, expect, test } from "../src/index.ts";

describe("the test kit", () => {
  test("hands a test a JetStream stream it can publish to with headers and consume from durably", async ({
    nats,
  }) => {
    const n = names(nats.namespace);
    await nats.jsm.streams.add({ name: n.streams.events, subjects: [n.allEvents] });
    await nats.jsm.consumers.add(n.streams.events, { durable_name: "kit", ack_policy: AckPolicy.Explicit });

    const data = {
      vmId: "srv-0a1b2c3d",
      userId: 7,
      name: "web-1",
      description: null,
      vcpuCount: 1,
      memoryMb: 512,
    };
    const h = headers();
    h.set(Header.Type, VmCreated.type);
    h.set(Header.SchemaVersion, String(VmCreated.version));
    h.set(Header.MsgId, "evt-1");
    const subject = n.event("vm", data.vmId, VmCreated.type);
    const ack = await nats.js.publish(subject, JSON.stringify(data), { headers: h, msgID: "evt-1" });
    expect(ack.duplicate).toBe(false);
    expect((await nats.js.publish(subject, JSON.stringify(data), { msgID: "evt-1" })).duplicate).toBe(true);

    const consumer = await nats.js.consumers.get(n.streams.events, "kit");
    const msg = await consumer.next({ expires: 5000 });
    expect(msg).not.toBeNull();
    expect(msg!.subject).toBe(subject);
    expect(msg!.headers?.get(Header.Type)).toBe("VmCreated");
    expect(parse(VmCreated, msg!.json())).toEqual(data);
    msg!.ack();
    expect(await consumer.next({ expires: 1000 })).toBeNull();
  });

  test("hands a test a PostgreSQL database of its own", async ({ db }) => {
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      await client.query("CREATE TABLE vms (vm_id text primary key, name text not null)");
      await client.query("INSERT INTO vms VALUES ($1, $2)", ["srv-0a1b2c3d", "web-1"]);
      const { rows } = await client.query("SELECT current_database() AS db, name FROM vms");
      expect(rows).toEqual([{ db: db.name, name: "web-1" }]);
    } finally {
      await client.end();
    }
  });

  test("gives every test its own namespace and database name", async ({ nats, db }) => {
    expect(nats.namespace).toMatch(/^mt_[0-9a-z]+_[0-9a-f]{8}$/);
    expect(db.name).toMatch(/^mt_[0-9a-z]+_[0-9a-f]{8}$/);
    expect(names(nats.namespace).streams.events).toBe(`${nats.namespace.toUpperCase()}_EVENTS`);
  });
});
