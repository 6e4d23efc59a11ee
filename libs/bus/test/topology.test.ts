import { names } from "@mikrom/contracts";
import { nanos } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { consumerConfig, differences, streamConfigs } from "../src/topology.ts";

const base = { stream: "NS_COMMANDS", durable: "svc-commands", filterSubject: "ns.cmd.svc.>" };

describe("a consumer declaration", () => {
  it("becomes an explicit-ack durable with bounded deliveries", () => {
    expect(consumerConfig(base)).toMatchObject({
      durable_name: "svc-commands",
      ack_policy: "explicit",
      deliver_policy: "all",
      filter_subject: "ns.cmd.svc.>",
      ack_wait: nanos(5_000),
      max_deliver: 5,
      max_ack_pending: 1_000,
    });
  });

  it("takes its first ack wait from the back-off list, as the server does", () => {
    expect(consumerConfig({ ...base, backoffMs: [1_000, 4_000], maxDeliver: 3 })).toMatchObject({
      ack_wait: nanos(1_000),
      backoff: [nanos(1_000), nanos(4_000)],
    });
  });

  it.each([
    [
      { maxDeliver: 2, backoffMs: [1, 2] },
      /maxDeliver \(2\) must exceed the number of back-off entries \(2\)/,
    ],
    [{ maxDeliver: 0 }, /maxDeliver must be a positive integer/],
    [{ maxDeliver: -1 }, /maxDeliver must be a positive integer/],
    [
      { backoffMs: [1_000], ackWaitMs: 5_000 },
      /first ack wait is backoffMs\[0\]; ackWaitMs \(5000\) disagrees/,
    ],
  ])("is refused when it cannot work: %o", (spec, message) => {
    expect(() => consumerConfig({ ...base, ...spec })).toThrow(message);
  });
});

describe("streams", () => {
  it("are commands as a work queue, events and dead letters kept, all with a two-minute duplicate window", () => {
    const [commands, events, dlq] = streamConfigs(names("ns"));
    expect(commands).toMatchObject({ name: "NS_COMMANDS", subjects: ["ns.cmd.>"], retention: "workqueue" });
    expect(events).toMatchObject({
      name: "NS_EVENTS",
      subjects: ["ns.evt.>"],
      retention: "limits",
      storage: "file",
    });
    expect(dlq).toMatchObject({ name: "NS_DLQ", subjects: ["ns.dlq.>"], retention: "limits" });
    for (const s of [commands, events, dlq]) expect(s?.duplicate_window).toBe(nanos(120_000));
  });

  it("refuse a duplicate window shorter than two minutes", () => {
    expect(() => streamConfigs(names("ns"), { duplicateWindowMs: 60_000 })).toThrow(/at least 120000 ms/);
  });
});

describe("differences", () => {
  it("name only the declared settings the server has otherwise, treating absent and empty alike", () => {
    const desired = {
      durable_name: "x",
      max_deliver: 5,
      backoff: undefined,
      filter_subject: "a.>",
      subjects: ["a", "b"],
    };
    expect(
      differences(desired, {
        durable_name: "x",
        max_deliver: 5,
        filter_subject: "a.>",
        subjects: ["a", "b"],
        extra: 1,
      }),
    ).toEqual([]);
    expect(
      differences(desired, { max_deliver: 6, backoff: [], filter_subject: "a.>", subjects: ["a"] }),
    ).toEqual(["max_deliver", "subjects"]);
  });
});
