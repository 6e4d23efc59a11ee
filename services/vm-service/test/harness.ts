import { randomUUID } from "node:crypto";
import {
  type Actor,
  type DataOf,
  Header,
  type MessageDef,
  type Names,
  names as namesFor,
  type QueryDef,
  type QueryReply,
  type RequestOf,
  type ResponseOf,
  VM_SERVICE,
  type VmView,
  WaitVm,
} from "@mikrom/contracts";
import { setLogDestination } from "@mikrom/telemetry";
import type { TestDatabase, TestNats } from "@mikrom/testkit";
import { type Msg, type NatsConnection, headers as natsHeaders } from "@nats-io/transport-node";
import { type Config, loadConfig } from "../src/config.ts";
import { startVmService, type VmService } from "../src/service.ts";

// In-process services log into the test's output; keep it readable unless asked (VM_TEST_LOGS=1).
if (!process.env.VM_TEST_LOGS) setLogDestination({ write: () => true });

export const OWNER: Actor = { userId: 7, userName: "ada", superuser: false };

export function testConfig(db: TestDatabase, nats: TestNats, env: Record<string, string> = {}): Config {
  return loadConfig({
    NATS_URL: nats.url,
    VM_DATABASE_URL: db.url,
    MIKROM_NAMESPACE: nats.namespace,
    SWEEP_INTERVAL_MS: "100",
    LOG_LEVEL: "warn",
    ...env,
  });
}

/** Collects every message on a subject pattern, and waits for one that matches, with a deadline. */
export class Recorder {
  readonly messages: Msg[] = [];
  readonly #waiters: Array<{ match: (m: Msg) => boolean; resolve: (m: Msg) => void }> = [];

  constructor(nc: NatsConnection, subject: string) {
    nc.subscribe(subject, {
      callback: (_e, m) => {
        this.messages.push(m);
        for (const w of [...this.#waiters]) if (w.match(m)) w.resolve(m);
      },
    });
  }

  typesFor(vmId: string): string[] {
    return this.messages
      .filter(
        (m) => (m.json() as { vmId?: string; entityId?: string }).vmId === vmId || m.subject.includes(vmId),
      )
      .map((m) => m.headers?.get(Header.Type) ?? "?");
  }

  next(match: (m: Msg) => boolean, timeoutMs = 10_000): Promise<Msg> {
    const found = this.messages.find(match);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const w = {
        match,
        resolve: (m: Msg) => {
          clearTimeout(t);
          this.#waiters.splice(this.#waiters.indexOf(w), 1);
          resolve(m);
        },
      };
      const t = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        reject(new Error(`no matching message within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiters.push(w);
    });
  }

  ofType(type: string, vmId?: string, timeoutMs?: number): Promise<Msg> {
    return this.next(
      (m) =>
        m.headers?.get(Header.Type) === type &&
        (vmId === undefined || (m.json() as { vmId?: string }).vmId === vmId),
      timeoutMs,
    );
  }
}

/** The other services' side: publishes their real, schema-valid messages. */
export class World {
  readonly names: Names;
  readonly commands: Recorder;
  readonly vmEvents: Recorder;
  readonly nats: TestNats;

  constructor(nats: TestNats) {
    this.nats = nats;
    this.names = namesFor(nats.namespace);
    this.commands = new Recorder(nats.nc, `${nats.namespace}.cmd.>`);
    this.vmEvents = new Recorder(nats.nc, `${nats.namespace}.evt.${VM_SERVICE}.>`);
  }

  async publish<D extends MessageDef>(
    subject: string,
    def: D,
    data: DataOf<D>,
    id = randomUUID(),
  ): Promise<string> {
    const h = natsHeaders();
    h.set(Header.MsgId, id);
    h.set(Header.Type, def.type);
    h.set(Header.SchemaVersion, String(def.version));
    h.set(Header.ContentType, "application/json");
    h.set(Header.CorrelationId, id);
    await this.nats.js.publish(subject, JSON.stringify(def.schema.parse(data)), { msgID: id, headers: h });
    return id;
  }

  /** A service takes every command waiting for it and loses them (a crash before it answered). */
  async takeCommands(service: string): Promise<number> {
    const { purged } = await this.nats.jsm.streams.purge(this.names.streams.commands, {
      filter: this.names.commandsTo(service),
    });
    return purged;
  }

  /** Sends a VM command and returns its outcome: the first event it caused, or its CommandRejected. */
  async command<D extends MessageDef>(verb: string, def: D, data: DataOf<D>): Promise<Msg> {
    const id = randomUUID();
    const outcome = this.vmEvents.next((m) => m.headers?.get(Header.CausationId) === id);
    await this.publish(this.names.command(VM_SERVICE, verb), def, data, id);
    return outcome;
  }

  async query<Q extends QueryDef>(def: Q, req: RequestOf<Q>, timeoutMs = 10_000): Promise<ResponseOf<Q>> {
    const reply = await this.nats.nc.request(this.names.query(VM_SERVICE, def.type), JSON.stringify(req), {
      timeout: timeoutMs,
    });
    const r = reply.json() as QueryReply<ResponseOf<Q>>;
    if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}`);
    return r.data;
  }

  /** Waits (through the service's own wait query) until the VM has the status. */
  async until(vmId: string, status: VmView["status"], timeoutMs = 10_000): Promise<VmView> {
    const r = await this.query(WaitVm, { vmId, actor: OWNER, status, timeoutMs }, timeoutMs + 2000);
    if (!r.reached)
      throw new Error(
        `VM ${vmId} did not reach ${status}: it is ${r.vm.status} (${r.vm.errorMessage ?? ""})`,
      );
    return r.vm;
  }
}

export function vmIdOf(n: number): string {
  return `srv-${n.toString(16).padStart(8, "0")}`;
}

export async function withService<T>(config: Config, fn: (s: VmService) => Promise<T>): Promise<T> {
  const service = await startVmService(config);
  try {
    return await fn(service);
  } finally {
    await service.stop();
  }
}
