import { names } from "@mikrom/contracts";
import { describe, expect, test } from "@mikrom/testkit";
import { nanos } from "@nats-io/transport-node";
import { type ConsumerSpec, declareTopology } from "../src/index.ts";

function specs(ns: string): ConsumerSpec[] {
  const n = names(ns);
  return [
    {
      stream: n.streams.commands,
      durable: "vm-service-commands",
      filterSubject: `${ns}.cmd.vm.>`,
      ackWaitMs: 10_000,
      maxDeliver: 4,
    },
    {
      stream: n.streams.events,
      durable: "vm-service-ippool-events",
      filterSubject: `${ns}.evt.ippool.>`,
      backoffMs: [1_000, 5_000],
      maxDeliver: 5,
    },
  ];
}

describe("declareTopology", () => {
  test("creates the namespace's streams and the declared consumers, and a second run changes nothing", async ({
    nats,
  }) => {
    const n = names(nats.namespace);
    const first = await declareTopology(nats.jsm, n, { consumers: specs(nats.namespace) });
    expect(first.streams.map((s) => s.change)).toEqual(["created", "created", "created"]);
    expect(first.consumers.map((c) => c.change)).toEqual(["created", "created"]);

    const commands = await nats.jsm.streams.info(n.streams.commands);
    expect(commands.config).toMatchObject({
      subjects: [`${nats.namespace}.cmd.>`],
      retention: "workqueue",
      storage: "file",
      duplicate_window: nanos(120_000),
    });
    const events = await nats.jsm.streams.info(n.streams.events);
    expect(events.config).toMatchObject({
      subjects: [`${nats.namespace}.evt.>`],
      retention: "limits",
      storage: "file",
    });
    const dlq = await nats.jsm.streams.info(n.streams.deadLetters);
    expect(dlq.config).toMatchObject({ subjects: [`${nats.namespace}.dlq.>`], retention: "limits" });

    const consumer = await nats.jsm.consumers.info(n.streams.events, "vm-service-ippool-events");
    expect(consumer.config).toMatchObject({
      ack_policy: "explicit",
      filter_subject: `${nats.namespace}.evt.ippool.>`,
      max_deliver: 5,
      backoff: [nanos(1_000), nanos(5_000)],
      ack_wait: nanos(1_000),
    });

    const second = await declareTopology(nats.jsm, n, { consumers: specs(nats.namespace) });
    expect([...second.streams, ...second.consumers].every((x) => x.change === "unchanged")).toBe(true);
  });

  test("updates a changed setting in place and leaves the rest alone", async ({ nats }) => {
    const n = names(nats.namespace);
    await declareTopology(nats.jsm, n, { consumers: specs(nats.namespace) });
    const [commands, events] = specs(nats.namespace) as [ConsumerSpec, ConsumerSpec];

    const changed = await declareTopology(nats.jsm, n, {
      consumers: [{ ...commands, maxDeliver: 8, backoffMs: [500, 2_000], ackWaitMs: undefined }, events],
      maxAgeMs: 86_400_000,
    });
    expect(changed.consumers).toEqual([
      { stream: n.streams.commands, durable: "vm-service-commands", change: "updated" },
      { stream: n.streams.events, durable: "vm-service-ippool-events", change: "unchanged" },
    ]);
    // max_age applies to the events and the dead letters; commands are work, removed when done.
    expect(changed.streams.map((s) => s.change)).toEqual(["unchanged", "updated", "updated"]);
    const info = await nats.jsm.consumers.info(n.streams.commands, "vm-service-commands");
    expect(info.config).toMatchObject({ max_deliver: 8, backoff: [nanos(500), nanos(2_000)] });
    expect((await nats.jsm.streams.info(n.streams.events)).config.max_age).toBe(nanos(86_400_000));

    // Back to no back-off: the list is removed, not left behind.
    const reverted = await declareTopology(nats.jsm, n, { consumers: [commands], maxAgeMs: 86_400_000 });
    expect(reverted.consumers[0]?.change).toBe("updated");
    const after = await nats.jsm.consumers.info(n.streams.commands, "vm-service-commands");
    expect(after.config.backoff ?? []).toEqual([]);
    expect(after.config.ack_wait).toBe(nanos(10_000));
    const again = await declareTopology(nats.jsm, n, { consumers: [commands], maxAgeMs: 86_400_000 });
    expect(again.consumers[0]?.change).toBe("unchanged");
  });

  test("a change the server refuses is reported with the consumer's name", async ({ nats }) => {
    const n = names(nats.namespace);
    const [commands] = specs(nats.namespace) as [ConsumerSpec];
    await declareTopology(nats.jsm, n, { consumers: [commands] });
    await expect(
      declareTopology(nats.jsm, n, { consumers: [{ ...commands, deliverPolicy: "new" }] }),
    ).rejects.toThrow(/consumer vm-service-commands: cannot update deliver_policy/);
  });

  test("declarations racing each other converge: every run succeeds and the topology exists once", async ({
    nats,
  }) => {
    const n = names(nats.namespace);
    const reports = await Promise.all(
      [1, 2, 3].map(() => declareTopology(nats.jsm, n, { consumers: specs(nats.namespace) })),
    );
    const created = reports.flatMap((r) => r.streams).filter((s) => s.change === "created");
    expect(created.length).toBeGreaterThanOrEqual(3);
    const streams: string[] = [];
    for await (const name of nats.jsm.streams.names())
      if (name.startsWith(nats.namespace.toUpperCase())) streams.push(name);
    expect(streams.sort()).toEqual([n.streams.commands, n.streams.deadLetters, n.streams.events].sort());
  });
});
