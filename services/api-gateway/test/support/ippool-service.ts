import { randomUUID } from "node:crypto";
import { Header, names, type PoolView } from "@mikrom/contracts";
import {
  AckPolicy,
  type ConsumerMessages,
  type JetStreamClient,
  jetstream,
  jetstreamManager,
} from "@nats-io/jetstream";
import { type NatsConnection, headers as natsHeaders, type Subscription } from "@nats-io/transport-node";

const toInt = (ip: string): number => ip.split(".").reduce((n, o) => n * 256 + Number(o), 0);
const toIp = (n: number): string => [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join(".");

/** Plays ippool-service for the gateway's tests: pools in memory, the queries, and create/update/delete. */
export class FakeIppoolService {
  readonly pools = new Map<string, PoolView>();
  readonly #js: JetStreamClient;
  readonly #ns: string;
  #messages: ConsumerMessages | undefined;
  #subs: Subscription[] = [];

  private constructor(js: JetStreamClient, ns: string) {
    this.#js = js;
    this.#ns = ns;
    const now = new Date().toISOString();
    this.pools.set("pool-00000001", {
      poolId: "pool-00000001",
      name: "default",
      cidr: "10.0.0.0/24",
      prefixLength: 24,
      gateway: "10.0.0.1",
      rangeStart: "10.0.0.10",
      rangeEnd: "10.0.0.250",
      description: null,
      active: true,
      createdAt: now,
      updatedAt: now,
    });
  }

  /** Needs the streams (FakeVmService.start creates them). */
  static async start(nc: NatsConnection, namespace: string): Promise<FakeIppoolService> {
    const n = names(namespace);
    const jsm = await jetstreamManager(nc);
    await jsm.consumers.add(n.streams.commands, {
      durable_name: "ippool-service",
      ack_policy: AckPolicy.Explicit,
      filter_subject: `${namespace}.cmd.ippool.>`,
    });
    const service = new FakeIppoolService(jetstream(nc), namespace);
    service.#messages = await (
      await service.#js.consumers.get(n.streams.commands, "ippool-service")
    ).consume();
    void (async () => {
      for await (const m of service.#messages!) {
        await service.#decide(
          m.headers?.get(Header.Type) ?? "",
          m.json(),
          (m.headers?.get(Header.MessageId) || m.headers?.get(Header.MsgId)) ?? "",
        );
        m.ack();
      }
    })();
    for (const name of ["list", "get", "stats", "stats-all", "suggest-range", "validate"]) {
      const sub = nc.subscribe(n.query("ippool", name));
      service.#subs.push(sub);
      void (async () => {
        for await (const m of sub) m.respond(JSON.stringify(service.#query(name, m.json())));
      })();
    }
    await nc.flush();
    return service;
  }

  async stop(): Promise<void> {
    await this.#messages?.close();
    for (const sub of this.#subs) sub.unsubscribe();
  }

  async #publish(poolId: string, type: string, data: unknown, causationId: string): Promise<void> {
    const h = natsHeaders();
    h.set(Header.Type, type);
    h.set(Header.CausationId, causationId);
    await this.#js.publish(`${this.#ns}.evt.ippool.${poolId}.${type}`, JSON.stringify(data), {
      msgID: randomUUID(),
      headers: h,
    });
  }

  async #decide(
    type: string,
    cmd: Record<string, unknown> & { poolId: string },
    commandId: string,
  ): Promise<void> {
    const now = new Date().toISOString();
    const pool = this.pools.get(cmd.poolId);
    if (type === "CreatePool") {
      const prefixLength = Number(String(cmd.cidr).split("/")[1]);
      this.pools.set(cmd.poolId, {
        ...(cmd as unknown as PoolView),
        prefixLength,
        active: true,
        createdAt: now,
        updatedAt: now,
      });
      return this.#publish(cmd.poolId, "PoolCreated", cmd, commandId);
    }
    if (!pool)
      return this.#publish(
        cmd.poolId,
        "CommandRejected",
        { entityId: cmd.poolId, command: type, code: "not_found", reason: "pool not found" },
        commandId,
      );
    if (type === "UpdatePool") {
      this.pools.set(cmd.poolId, { ...pool, ...(cmd as Partial<PoolView>), updatedAt: now });
      return this.#publish(cmd.poolId, "PoolUpdated", cmd, commandId);
    }
    if (pool.name === "default") {
      const reason = "the default pool cannot be deleted";
      return this.#publish(
        cmd.poolId,
        "CommandRejected",
        { entityId: cmd.poolId, command: type, code: "conflict", reason },
        commandId,
      );
    }
    this.pools.delete(cmd.poolId);
    return this.#publish(cmd.poolId, "PoolDeleted", { poolId: cmd.poolId }, commandId);
  }

  #stats(p: PoolView) {
    const total = toInt(p.rangeEnd) - toInt(p.rangeStart) + 1;
    return {
      poolId: p.poolId,
      name: p.name,
      active: p.active,
      total,
      allocated: 0,
      available: total,
      usagePercent: 0,
    };
  }

  #query(name: string, req: Record<string, string>): unknown {
    const ok = (data: unknown) => ({ ok: true, data });
    const notFound = { ok: false, error: { code: "not_found", message: "pool not found" } };
    switch (name) {
      case "list":
        return ok({ items: [...this.pools.values()] });
      case "get":
        return this.pools.has(req.poolId!) ? ok(this.pools.get(req.poolId!)) : notFound;
      case "stats":
        return this.pools.has(req.poolId!) ? ok(this.#stats(this.pools.get(req.poolId!)!)) : notFound;
      case "stats-all": {
        const pools = [...this.pools.values()].map((p) => this.#stats(p));
        const total = pools.reduce((n, p) => n + p.total, 0);
        return ok({ pools, total, allocated: 0, available: total, usagePercent: 0 });
      }
      case "validate": {
        const taken = [...this.pools.values()].some((p) => p.name === req.name);
        return ok({
          valid: !taken,
          issues: taken ? [{ field: "name", message: "a pool with this name exists" }] : [],
        });
      }
      default: {
        const [base, bits] = String(req.cidr).split("/");
        const prefixLength = Number(bits);
        if (!base || !(prefixLength >= 16 && prefixLength <= 30))
          return { ok: false, error: { code: "invalid", message: "cidr must be a.b.c.d/16-30" } };
        const size = 2 ** (32 - prefixLength);
        const network = toInt(base) - (toInt(base) % size);
        const first = network + 1;
        const last = network + size - 2;
        return ok({
          cidr: `${toIp(network)}/${prefixLength}`,
          network: toIp(network),
          prefixLength,
          netmask: toIp(2 ** 32 - size),
          firstUsable: toIp(first),
          lastUsable: toIp(last),
          broadcast: toIp(network + size - 1),
          totalHosts: size - 2,
          suggestedGateway: toIp(first),
          suggestedStart: toIp(first + 1),
          suggestedEnd: toIp(last),
          suggestedSize: last - first,
        });
      }
    }
  }
}
