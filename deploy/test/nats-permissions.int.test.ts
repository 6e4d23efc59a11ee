/**
 * The generated NATS users, on a real nats-server this test starts (its own port and store, never
 * the shared server): each service can do what its code does (the flow below is the services' own
 * topology, command, event and query paths) and is refused everything else it has no business with.
 */
import { connectNats, consumerConfig, declareTopology } from "@mikrom/bus";
import { names } from "@mikrom/contracts";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { hostUser, passwordVariable, renderAuthConf, SERVICES } from "../src/nats-permissions.ts";
import {
  type PermissionProbe,
  permissionProbe,
  settled,
  startNatsServer,
  type TestNatsServer,
} from "./nats-server.ts";

const ns = names("mikrom");
/** The services, and two hosts' agents with a user each (as compose and Kubernetes run them). */
const HOSTS = ["h1", "h2"] as const;
const USERS = [...SERVICES.filter((s) => s !== "provisioner"), ...HOSTS.map(hostUser)] as const;
type User = (typeof USERS)[number];
const password = (u: User): string => `test-${u}`;
let server: TestNatsServer | undefined;
let port = 0;
const conns = new Map<User, NatsConnection>();
const probes = new Map<User, PermissionProbe>();

const canPublish = (service: User, subject: string): Promise<boolean> =>
  probes.get(service)!.canPublish(subject);
const canSubscribe = (service: User, subject: string): Promise<boolean> =>
  probes.get(service)!.canSubscribe(subject);

beforeAll(async () => {
  server = await startNatsServer(
    renderAuthConf("mikrom", HOSTS),
    Object.fromEntries(USERS.map((u) => [passwordVariable(u), password(u)])),
    { user: "api-gateway", pass: password("api-gateway") },
  );
  port = server.port;
  for (const u of USERS) {
    const nc = await connect({
      servers: `127.0.0.1:${port}`,
      user: u,
      pass: password(u),
      noAsyncTraces: true,
    });
    conns.set(u, nc);
    probes.set(u, permissionProbe(nc));
  }
});

afterAll(async () => {
  for (const nc of conns.values()) await nc.close();
  server?.stop();
});

describe("NATS users generated from deploy/src/nats-permissions.ts", () => {
  test("a client without a user, or with a wrong password, is refused", async () => {
    await expect(connect({ servers: `127.0.0.1:${port}`, timeout: 2_000 })).rejects.toThrow(/Authorization/);
    await expect(
      connect({ servers: `127.0.0.1:${port}`, user: "vm-service", pass: "wrong", timeout: 2_000 }),
    ).rejects.toThrow(/Authorization/);
  });

  test("a service connects with the credentials written in its NATS_URL (libs/bus connectNats)", async () => {
    const nc = await connectNats({
      servers: `nats://audit:${password("audit")}@127.0.0.1:${port}`,
      name: "t",
    });
    await nc.flush();
    await nc.close();
  });

  test("the services' own paths work: topology, a command through JetStream, an event, a query", async () => {
    const gw = conns.get("api-gateway")!;
    const vm = conns.get("vm-service")!;
    const prov = conns.get("host-h1")!;
    // Every service declares the streams at start; the durables are the services' own.
    await declareTopology(await jetstreamManager(gw), ns, { logger: { info() {} } });
    await declareTopology(await jetstreamManager(vm), ns, {
      logger: { info() {} },
      consumers: [
        { stream: ns.streams.commands, durable: "vm-service-commands", filterSubject: "mikrom.cmd.vm.>" },
        {
          stream: ns.streams.events,
          durable: "vm-service-provisioner-events",
          filterSubject: "mikrom.evt.provisioner.*.*",
        },
      ],
    });
    await declareTopology(await jetstreamManager(prov), ns, {
      logger: { info() {} },
      consumers: [
        {
          stream: ns.streams.commands,
          durable: "provisioner-h1",
          filterSubject: "mikrom.cmd.provisioner.h1.*",
        },
      ],
    });
    expect(consumerConfig({ stream: "s", durable: "d", filterSubject: "f" }).durable_name).toBe("d");

    // gateway → CreateVm → vm-service's durable; vm-service → BootVm → the host's durable; → VmBooted back.
    await jetstream(gw).publish("mikrom.cmd.vm.create", "{}", { msgID: "c1" });
    const vmCommands = await jetstream(vm).consumers.get(ns.streams.commands, "vm-service-commands");
    const create = await vmCommands.next({ expires: 2_000 });
    expect(create?.subject).toBe("mikrom.cmd.vm.create");
    await create!.ackAck();
    await jetstream(vm).publish("mikrom.cmd.provisioner.h1.boot", "{}", { msgID: "c2" });
    const hostCommands = await jetstream(prov).consumers.get(ns.streams.commands, "provisioner-h1");
    const boot = await hostCommands.next({ expires: 2_000 });
    expect(boot?.subject).toBe("mikrom.cmd.provisioner.h1.boot");
    await boot!.ackAck();
    await jetstream(prov).publish("mikrom.evt.provisioner.h1.VmBooted", "{}", { msgID: "e1" });
    const booted = await (
      await jetstream(vm).consumers.get(ns.streams.events, "vm-service-provisioner-events")
    ).next({ expires: 2_000 });
    expect(booted?.subject).toBe("mikrom.evt.provisioner.h1.VmBooted");
    await booted!.ackAck();

    // A query: the gateway asks, vm-service (queue group) answers on the gateway's inbox.
    const sub = vm.subscribe("mikrom.qry.vm.get", {
      queue: "vm-service",
      callback: (_e, m) => {
        m.respond("pong");
      },
    });
    await vm.flush();
    expect((await gw.request("mikrom.qry.vm.get", "{}", { timeout: 2_000 })).string()).toBe("pong");
    sub.unsubscribe();
    for (const nc of conns.values()) await settled(nc);
    for (const u of USERS) expect(probes.get(u)!.violations, u).toEqual([]);
  });

  const may: Array<[User, "pub" | "sub", string]> = [
    ["api-gateway", "pub", "mikrom.cmd.vm.create"],
    ["api-gateway", "pub", "mikrom.cmd.ippool.create"],
    ["api-gateway", "pub", "mikrom.qry.audit.list"],
    ["api-gateway", "sub", "mikrom.evt.vm.srv-1.*"],
    ["vm-service", "pub", "mikrom.evt.vm.srv-1.VmRunning"],
    ["vm-service", "pub", "mikrom.cmd.ippool.allocate"],
    ["vm-service", "pub", "mikrom.dlq.mikrom.cmd.vm.create"],
    ["vm-service", "sub", "mikrom.qry.vm.list"],
    ["vm-service", "sub", "mikrom.beat.*"],
    ["ippool-service", "pub", "mikrom.evt.ippool.srv-1.IpAllocated"],
    ["ippool-service", "sub", "mikrom.qry.ippool.get"],
    ["host-h1", "pub", "mikrom.evt.host.h1.HostRegistered"],
    ["host-h1", "pub", "mikrom.beat.h1"],
    ["host-h1", "pub", "mikrom.evt.provisioner.h1.VmShutDown"],
    ["host-h1", "sub", "mikrom.qry.provisioner.h1.console"],
    ["host-h2", "pub", "mikrom.evt.provisioner.h2.VmBooted"],
    ["audit", "sub", "mikrom.qry.audit.list"],
    ["audit", "pub", "$JS.ACK.MIKROM_EVENTS.audit-events.1.1.1.1.1"],
  ];
  test.each(may)("%s may %s %s", async (service, op, subject) => {
    expect(await (op === "pub" ? canPublish : canSubscribe)(service, subject)).toBe(true);
  });

  const mayNot: Array<[User, "pub" | "sub", string]> = [
    ["api-gateway", "pub", "mikrom.evt.vm.srv-1.VmRunning"],
    ["api-gateway", "pub", "mikrom.cmd.provisioner.h1.boot"],
    ["api-gateway", "sub", "mikrom.cmd.>"],
    ["api-gateway", "sub", "mikrom.qry.vm.get"],
    ["api-gateway", "pub", "mikrom.beat.h1"],
    ["api-gateway", "pub", "$JS.API.STREAM.DELETE.MIKROM_EVENTS"],
    ["vm-service", "pub", "mikrom.evt.ippool.srv-1.IpAllocated"],
    ["vm-service", "pub", "mikrom.cmd.vm.create"],
    ["vm-service", "sub", "mikrom.qry.ippool.>"],
    ["vm-service", "pub", "$JS.API.CONSUMER.CREATE.MIKROM_EVENTS.audit-events.mikrom.evt.>"],
    ["ippool-service", "pub", "mikrom.evt.vm.srv-1.VmRunning"],
    ["ippool-service", "pub", "mikrom.cmd.provisioner.h1.boot"],
    ["ippool-service", "sub", "mikrom.evt.>"],
    ["ippool-service", "pub", "$JS.API.STREAM.PURGE.MIKROM_COMMANDS"],
    ["host-h1", "pub", "mikrom.evt.vm.srv-1.VmRunning"],
    ["host-h1", "pub", "mikrom.cmd.vm.create"],
    ["host-h1", "pub", "$JS.API.CONSUMER.CREATE.MIKROM_COMMANDS.x.mikrom.cmd.vm.>"],
    ["host-h1", "sub", "mikrom.qry.vm.>"],
    // Another host's commands, facts and queries are out of reach.
    ["host-h1", "pub", "$JS.API.CONSUMER.CREATE.MIKROM_COMMANDS.provisioner-h2.mikrom.cmd.provisioner.h2.*"],
    ["host-h1", "pub", "$JS.API.CONSUMER.MSG.NEXT.MIKROM_COMMANDS.provisioner-h2"],
    ["host-h1", "pub", "$JS.ACK.MIKROM_COMMANDS.provisioner-h2.1.1.1.1.1"],
    ["host-h1", "sub", "mikrom.cmd.provisioner.h2.*"],
    ["host-h1", "pub", "mikrom.evt.provisioner.h2.VmBooted"],
    ["host-h1", "pub", "mikrom.evt.host.h2.HostRegistered"],
    ["host-h1", "pub", "mikrom.beat.h2"],
    ["host-h1", "sub", "mikrom.beat.*"],
    ["host-h1", "sub", "mikrom.qry.provisioner.h2.console"],
    ["host-h1", "pub", "mikrom.dlq.mikrom.cmd.provisioner.h2.boot"],
    ["audit", "pub", "mikrom.evt.vm.srv-1.VmRunning"],
    ["audit", "pub", "mikrom.cmd.vm.create"],
    ["audit", "sub", "mikrom.cmd.>"],
    ["audit", "sub", "$SYS.>"],
  ];
  test.each(mayNot)("%s is refused to %s %s", async (service, op, subject) => {
    expect(await (op === "pub" ? canPublish : canSubscribe)(service, subject)).toBe(false);
  });

  test("a host's agent cannot take another host's commands: its pull is refused and the command waits", async () => {
    const vm = conns.get("vm-service")!;
    const h1 = conns.get("host-h1")!;
    const h2 = conns.get("host-h2")!;
    await declareTopology(await jetstreamManager(h2), ns, {
      logger: { info() {} },
      consumers: [
        {
          stream: ns.streams.commands,
          durable: "provisioner-h2",
          filterSubject: "mikrom.cmd.provisioner.h2.*",
        },
      ],
    });
    await jetstream(vm).publish("mikrom.cmd.provisioner.h2.destroy", "{}", { msgID: "c-h2" });
    await expect(
      jetstream(h1)
        .consumers.get(ns.streams.commands, "provisioner-h2")
        .then((c) => c.next({ expires: 1_000 })),
    ).rejects.toThrow(/Permissions Violation/);
    const mine = await (await jetstream(h2).consumers.get(ns.streams.commands, "provisioner-h2")).next({
      expires: 2_000,
    });
    expect(mine?.subject).toBe("mikrom.cmd.provisioner.h2.destroy");
    await mine!.ackAck();
  });
});
