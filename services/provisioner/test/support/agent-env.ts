import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { createPublisher } from "@mikrom/bus";
import {
  type DataOf,
  Header,
  type MessageDef,
  names as namesOf,
  PROVISIONER_SERVICE,
  ProvisionerVerb,
} from "@mikrom/contracts";
import { withContext } from "@mikrom/telemetry";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { type Config, loadConfig } from "../../src/config.ts";

/** A configuration for an agent under test: its own namespace, database and run folder. */
export function agentConfig(env: Record<string, string>): Config {
  return loadConfig({ HEARTBEAT_INTERVAL_MS: "60000", LOG_LEVEL: "info", ...env });
}

export async function tempRunDir(): Promise<{ dir: string; remove(): Promise<void> }> {
  // Short: qemu's QMP socket path must fit a unix socket address.
  const dir = await mkdtemp(join(tmpdir(), "mka-"));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

export interface SeenEvent {
  readonly subject: string;
  readonly type: string;
  readonly data: Record<string, unknown>;
  readonly causationId: string;
  readonly correlationId: string;
  readonly messageId: string;
}

/** Every event of a namespace as it is published (core NATS, from before the first command). */
export class EventTap {
  readonly events: SeenEvent[] = [];
  readonly #subs: Subscription[];

  /** Every event, and every heartbeat (`<ns>.beat.<host>`, core NATS). */
  constructor(nc: NatsConnection, namespace: string) {
    this.#subs = [`${namespace}.evt.>`, `${namespace}.beat.*`].map((subject) =>
      nc.subscribe(subject, {
        callback: (_error, msg) => {
          this.events.push({
            subject: msg.subject,
            type: msg.headers?.get(Header.Type) ?? "",
            data: msg.json(),
            causationId: msg.headers?.get(Header.CausationId) ?? "",
            correlationId: msg.headers?.get(Header.CorrelationId) ?? "",
            messageId: (msg.headers?.get(Header.MessageId) || msg.headers?.get(Header.MsgId)) ?? "",
          });
        },
      }),
    );
  }

  /** The first event matching, waiting for it up to the deadline. */
  async next(
    what: string,
    match: (e: SeenEvent) => boolean,
    options: { timeoutMs?: number; after?: number } = {},
  ): Promise<SeenEvent> {
    const deadline = Date.now() + (options.timeoutMs ?? 10_000);
    for (;;) {
      const found = this.events.slice(options.after ?? 0).find(match);
      if (found) return found;
      if (Date.now() > deadline) {
        const seen = this.events.map((e) => `${e.type}(${String(e.data.vmId ?? e.data.hostId)})`).join(", ");
        throw new Error(`timed out waiting for ${what}; seen: ${seen || "nothing"}`);
      }
      await delay(20);
    }
  }

  of(type: string, vmId?: string): SeenEvent[] {
    return this.events.filter((e) => e.type === type && (vmId === undefined || e.data.vmId === vmId));
  }

  close(): void {
    for (const sub of this.#subs) sub.unsubscribe();
  }
}

/** Sends a command to a host as vm-service would, with the user in the baggage; returns its message id. */
export async function sendCommand<D extends MessageDef & { type: keyof typeof ProvisionerVerb }>(
  nc: NatsConnection,
  namespace: string,
  hostId: string,
  def: D,
  data: DataOf<D>,
  user: { id: string; name: string } = { id: "7", name: "alice" },
): Promise<string> {
  const names = namesOf(namespace);
  const subject = names.command(PROVISIONER_SERVICE, hostId, ProvisionerVerb[def.type]);
  const vmId = (data as { vmId: string }).vmId;
  const sent = await withContext({ user_id: user.id, user_name: user.name, vm_id: vmId }, () =>
    createPublisher(nc).send(def, subject, data),
  );
  return sent.messageId;
}

export function bootData(
  vmId: string,
  ip = "10.0.0.10",
): {
  vmId: string;
  vcpuCount: number;
  memoryMb: number;
  ipAddress: string;
  prefixLength: number;
  gateway: string;
} {
  return { vmId, vcpuCount: 1, memoryMb: 128, ipAddress: ip, prefixLength: 24, gateway: "10.0.0.1" };
}
