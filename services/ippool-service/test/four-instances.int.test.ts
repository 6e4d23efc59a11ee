import { randomUUID } from "node:crypto";
import { callQuery, createPublisher } from "@mikrom/bus";
import {
  AddressHistory,
  AllocateIp,
  GetPoolStats,
  Header,
  names as namesOf,
  type QueryDef,
  type RequestOf,
  type ResponseOf,
  SuggestRange,
  VmAllocations,
} from "@mikrom/contracts";
import { describe, expect, test } from "@mikrom/testkit";
import {
  AckPolicy,
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
} from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import { DEFAULT_POOL_ID } from "../src/handlers/default-pool.ts";
import { COMMANDS_DURABLE } from "../src/service.ts";
import { type Instance, startInstance } from "./support/instances.ts";

type Outcome = { eventId: string; vmId: string; type: string; address?: string; reason?: string };

/** Every ippool allocation outcome in the events stream so far (JetStream has already dropped re-sent ids). */
async function readOutcomes(
  js: JetStreamClient,
  jsm: JetStreamManager,
  stream: string,
  ns: string,
): Promise<Outcome[]> {
  // An ephemeral consumer with one filter: nats-server 2.9 knows no filter_subjects (ordered consumers use it).
  const { name } = await jsm.consumers.add(stream, {
    filter_subject: `${ns}.evt.ippool.>`,
    ack_policy: AckPolicy.None,
    deliver_policy: DeliverPolicy.All,
    inactive_threshold: nanos(30_000),
  });
  const consumer = await js.consumers.get(stream, name);
  const outcomes: Outcome[] = [];
  try {
    let pending = (await consumer.info(true)).num_pending;
    while (pending > 0) {
      const batch = await consumer.fetch({ max_messages: Math.min(pending, 500), expires: 5_000 });
      for await (const m of batch) {
        pending = m.info.pending;
        const type = m.subject.split(".").at(-1)!;
        if (type === "IpAllocated" || type === "IpAllocationFailed") {
          const data = m.json<{ vmId: string; address?: string; reason?: string }>();
          outcomes.push({
            eventId: (m.headers?.get(Header.MessageId) || m.headers?.get(Header.MsgId)) ?? "",
            type,
            ...data,
          });
        }
      }
    }
  } finally {
    await jsm.consumers.delete(stream, name).catch(() => false);
  }
  return outcomes;
}

async function waitUntil<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Exactly 253 VMs hold one address each, distinct; every other VM only ever heard `exhausted`. */
function assertAllocation(outcomes: Outcome[], vmIds: string[]): void {
  const addressesByVm = new Map<string, Set<string>>();
  const failuresByVm = new Map<string, Set<string>>();
  for (const o of outcomes) {
    const into = o.type === "IpAllocated" ? addressesByVm : failuresByVm;
    into.set(o.vmId, (into.get(o.vmId) ?? new Set()).add(o.address ?? o.reason ?? "?"));
  }
  expect(new Set(outcomes.map((o) => o.vmId))).toEqual(new Set(vmIds));
  expect(addressesByVm.size).toBe(253);
  expect([...addressesByVm.values()].every((s) => s.size === 1)).toBe(true);
  const addresses = [...addressesByVm.values()].map((s) => [...s][0]!);
  expect(new Set(addresses).size).toBe(253);
  const exhausted = vmIds.filter((v) => !addressesByVm.has(v));
  expect(exhausted).toHaveLength(47);
  expect(exhausted.every((v) => [...(failuresByVm.get(v) ?? [])].join() === "exhausted")).toBe(true);
}

describe("four instances sharing one consumer", () => {
  test("300 VMs on 253 addresses: 253 distinct addresses, 47 exhausted, also with duplicates and a killed instance", async ({
    db,
    nats,
  }) => {
    const names = namesOf(nats.namespace);
    const env = {
      NATS_URL: nats.url,
      IPPOOL_DATABASE_URL: db.url,
      MIKROM_NAMESPACE: nats.namespace,
      IPPOOL_CONCURRENCY: "4",
      IPPOOL_ACK_WAIT_MS: "3000",
      LOG_LEVEL: "info",
    };
    const instances: Instance[] = [1, 2, 3, 4].map((i) => startInstance(`ippool-${i}`, env));
    try {
      await Promise.all(instances.map((i) => i.waitFor("ippool-service started", 30_000)));
      const publisher = createPublisher(nats.nc);
      const js = jetstream(nats.nc);
      const subject = names.command("ippool", "allocate");
      const vmIds = Array.from(
        { length: 300 },
        (_, i) => `srv-${(0xa000 + i).toString(16).padStart(8, "0")}`,
      );
      const msgIds = vmIds.map(() => randomUUID());
      const send = (vmId: string, messageId: string) =>
        publisher.send(AllocateIp, subject, { vmId }, { messageId });

      await Promise.all(vmIds.map((vmId, i) => send(vmId, msgIds[i]!)));
      const first = await waitUntil("300 outcomes", 60_000, async () => {
        const o = await readOutcomes(js, nats.jsm, names.streams.events, nats.namespace);
        return new Set(o.map((x) => x.vmId)).size === 300 ? o : undefined;
      });
      expect(first).toHaveLength(300);
      assertAllocation(first, vmIds);
      const busy = instances.filter((i) =>
        i.messages.some((m) => m === "address allocated" || m === "no address allocated"),
      );
      expect(busy.length).toBeGreaterThanOrEqual(2);

      // Again: the same message ids (JetStream drops them), and every command under a new id while
      // one instance is killed mid-run (what it held is redelivered to the others).
      const dropped = await Promise.all(vmIds.map((vmId, i) => send(vmId, msgIds[i]!)));
      expect(dropped.every((ack) => ack.duplicate)).toBe(true);
      const handled = (i: Instance) =>
        i.messages.filter((m) => m === "address allocated" || m === "no address allocated").length;
      const before = handled(instances[0]!);
      const resend = Promise.all(vmIds.map((vmId) => send(vmId, randomUUID())));
      await waitUntil("instance 1 busy with the second round", 30_000, async () =>
        handled(instances[0]!) >= before + 10 ? true : undefined,
      );
      await instances[0]!.kill("SIGKILL");
      await resend;
      const jsm = nats.jsm;
      await waitUntil("the command consumer to drain", 60_000, async () => {
        const info = await jsm.consumers.info(names.streams.commands, COMMANDS_DURABLE);
        return info.num_pending === 0 && info.num_ack_pending === 0 ? true : undefined;
      });
      const all = await waitUntil("600 outcomes", 30_000, async () => {
        const o = await readOutcomes(js, nats.jsm, names.streams.events, nats.namespace);
        return o.length >= 600 ? o : undefined;
      });
      assertAllocation(all, vmIds);
      // 600 answers; a copy the killed instance held and another one found already handled is
      // answered again, under the same message id.
      expect(new Set(all.map((o) => o.eventId)).size).toBe(600);
      // What the killed instance held was delivered again to the others, and absorbed.
      const redelivered = instances
        .slice(1)
        .flatMap((i) => i.lines.filter((l) => Number(l.delivery_count) > 1));
      expect(redelivered.length).toBeGreaterThan(0);
      const outcomeLines = instances
        .flatMap((i) => i.lines)
        .filter((l) => String(l.message).endsWith("allocated"));
      expect(outcomeLines.length).toBeGreaterThan(300);
      expect(outcomeLines.every((l) => typeof l.vm_id === "string" && vmIds.includes(l.vm_id))).toBe(true);

      // The read side over NATS request-reply, answered by whichever instance is left.
      const ask = <Q extends QueryDef>(def: Q, request: RequestOf<Q>): Promise<ResponseOf<Q>> =>
        callQuery(
          nats.nc,
          { subject: names.query("ippool", def.type), request: def, response: def.response },
          request,
        ) as Promise<ResponseOf<Q>>;
      expect(await ask(GetPoolStats, { poolId: DEFAULT_POOL_ID })).toMatchObject({
        name: "default",
        total: 253,
        allocated: 253,
        available: 0,
        usagePercent: 100,
      });
      const someVm = vmIds.find((v) => all.some((o) => o.vmId === v && o.address))!;
      const held = await ask(VmAllocations, { vmId: someVm });
      expect(held.current?.address).toBe(all.find((o) => o.vmId === someVm && o.address)?.address);
      expect(
        (await ask(AddressHistory, { address: held.current!.address })).allocations.map((a) => a.vmId),
      ).toEqual([someVm]);
      await expect(ask(SuggestRange, { cidr: "10.0.0.0/8" })).rejects.toThrow(
        /pools must be between \/16 and \/30/,
      );

      // SIGTERM: each instance finishes, says so and exits cleanly.
      for (const instance of instances.slice(1)) {
        await instance.kill("SIGTERM");
        expect(instance.child.exitCode).toBe(0);
        expect(instance.messages).toContain("ippool-service stopped");
      }
    } finally {
      await Promise.all(instances.map((i) => i.kill("SIGTERM")));
    }
  }, 180_000);
});
