import { createPublisher } from "@mikrom/bus";
import { names as namesOf, Registry, VmCreated } from "@mikrom/contracts";
import { describe, expect, test } from "@mikrom/testkit";
import { openDatabase, type ServiceDefinition, type ServiceStore, startService } from "../src/index.ts";

describe("the service skeleton", () => {
  test("hands background work the consumers' start only once they run, and they take what waited", async ({
    db,
    nats,
  }) => {
    const names = namesOf(nats.namespace);
    const seen: string[] = [];
    const durable = "skeleton-test";
    const definition: ServiceDefinition<
      { natsUrl: string; databaseUrl: string; namespace: string; streamReplicas: number },
      ServiceStore,
      object
    > = {
      name: "skeleton-test",
      async openStore(config) {
        const kysely = openDatabase(config.databaseUrl);
        return { db: kysely, close: () => kysely.destroy() };
      },
      async start() {
        seen.push("start");
        return {
          consumers: [
            {
              stream: names.streams.events,
              durable,
              filterSubject: names.eventsOf("vm"),
              registry: new Registry([VmCreated]),
              handle: async (e) => {
                seen.push(`handled ${e.messageId}`);
              },
            },
          ],
          whenConsuming() {
            seen.push("consuming");
          },
        };
      },
    };
    const config = { natsUrl: nats.url, databaseUrl: db.url, namespace: nats.namespace, streamReplicas: 1 };
    // An event already waiting in the stream when the service starts (streams declared as a service would).
    const first = await startService(definition, config);
    await first.stop();
    seen.length = 0;
    await createPublisher(nats.nc).send(
      VmCreated,
      names.event("vm", "srv-0000abcd", "VmCreated"),
      { vmId: "srv-0000abcd", userId: 1, name: "a", description: null, vcpuCount: 1, memoryMb: 512 },
      { messageId: "waited" },
    );
    const service = await startService(definition, config);
    try {
      for (let i = 0; i < 100 && !seen.includes("handled waited"); i++)
        await new Promise((r) => setTimeout(r, 50));
      // By the time background work starts, the durable exists and is pulling.
      expect(seen.slice(0, 2)).toEqual(["start", "consuming"]);
      expect(seen).toContain("handled waited");
      expect((await nats.jsm.consumers.info(names.streams.events, durable)).name).toBe(durable);
    } finally {
      await service.stop();
    }
  });
});
