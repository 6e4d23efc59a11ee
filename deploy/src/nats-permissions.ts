/**
 * The one source of truth for what each service may do on NATS: its publish and subscribe
 * permissions, derived from the subjects, streams and durable consumers the services use
 * (ARCHITECTURE.md §2; the durables are named in each service's service.ts). `generate.ts` renders
 * it to `deploy/nats/auth.conf` for compose and `deploy/k8s/base/nats/auth.conf` for Kubernetes, each
 * with its deployment's hosts, and the permission tests start a real nats-server with what it renders.
 */
import { randomBytes } from "node:crypto";

export const SERVICES = ["api-gateway", "vm-service", "ippool-service", "provisioner", "audit"] as const;
export type Service = (typeof SERVICES)[number];

export interface Permissions {
  publish: string[];
  subscribe: string[];
  /** Lets a query responder answer on the requester's reply subject, and nowhere else. */
  allowResponses: boolean;
}

/** A durable pull consumer as the service declares it: `*` in `durable` stands for a per-host name. */
interface Durable {
  stream: "commands" | "events";
  durable: string;
  filter: string;
}

interface Use {
  /** Subjects published to (commands, events); JetStream publishes included. */
  publishes: string[];
  /** Core NATS subscriptions (outcome listeners, `wait`). */
  listens: string[];
  /** Query services this one asks. */
  asks: string[];
  /** The query subjects it answers, `<ns>.qry.<answers>.>`, if any. */
  answers?: string;
  durables: Durable[];
  /** Ephemeral ordered consumers (the gateway's event feed) on these filters of the events stream. */
  ordered: string[];
}

/** `host`: the one host a provisioner identity speaks for, or `*` for any (see renderAuthConf). */
function uses(ns: string, host: string): Record<Service, Use> {
  return {
    "api-gateway": {
      publishes: [`${ns}.cmd.vm.>`, `${ns}.cmd.ippool.>`],
      // The outcome of a command is the first event caused by it on the entity's subjects.
      listens: [`${ns}.evt.vm.>`, `${ns}.evt.ippool.>`],
      asks: ["vm", "ippool", "audit"],
      durables: [],
      ordered: [`${ns}.evt.vm.>`],
    },
    "vm-service": {
      publishes: [`${ns}.evt.vm.>`, `${ns}.cmd.ippool.>`, `${ns}.cmd.provisioner.>`],
      // The `wait` query listens to one VM's events; every host's heartbeat comes on core NATS.
      listens: [`${ns}.evt.vm.>`, `${ns}.beat.*`],
      asks: [],
      answers: "vm",
      durables: [
        { stream: "commands", durable: "vm-service-commands", filter: `${ns}.cmd.vm.>` },
        { stream: "events", durable: "vm-service-ippool-events", filter: `${ns}.evt.ippool.*.*` },
        { stream: "events", durable: "vm-service-provisioner-events", filter: `${ns}.evt.provisioner.*.*` },
        { stream: "events", durable: "vm-service-host-events", filter: `${ns}.evt.host.*.*` },
      ],
      ordered: [],
    },
    "ippool-service": {
      publishes: [`${ns}.evt.ippool.>`],
      listens: [],
      asks: [],
      answers: "ippool",
      durables: [{ stream: "commands", durable: "ippool-service-commands", filter: `${ns}.cmd.ippool.>` }],
      ordered: [],
    },
    provisioner: {
      // Its facts under its own host id only: what it says of another host's VM never gets there.
      publishes: [`${ns}.evt.provisioner.${host}.*`, `${ns}.evt.host.${host}.*`, `${ns}.beat.${host}`],
      listens: [],
      asks: [],
      answers: `provisioner.${host}`,
      // `provisioner-<hostId>` on `<ns>.cmd.provisioner.<hostId>.*`: its own host's commands only.
      durables: [
        {
          stream: "commands",
          durable: host === "*" ? "*" : `provisioner-${host}`,
          filter: `${ns}.cmd.provisioner.${host}.*`,
        },
      ],
      ordered: [],
    },
    audit: {
      publishes: [],
      listens: [],
      asks: [],
      answers: "audit",
      durables: [{ stream: "events", durable: "audit-events", filter: `${ns}.evt.>` }],
      ordered: [],
    },
  };
}

/** `<NS>_COMMANDS`, `<NS>_EVENTS`, `<NS>_DLQ`, as libs/contracts names them. */
export function streamNames(ns: string): { commands: string; events: string; deadLetters: string } {
  const prefix = ns.toUpperCase();
  return { commands: `${prefix}_COMMANDS`, events: `${prefix}_EVENTS`, deadLetters: `${prefix}_DLQ` };
}

/**
 * Each service's permissions in namespace `ns`; the provisioner's are those of the agent of host
 * `host` (`*`: of an agent of any host).
 */
export function permissions(ns = "mikrom", host = "*"): Record<Service, Permissions> {
  const streams = streamNames(ns);
  const all = uses(ns, host);
  const result = {} as Record<Service, Permissions>;
  for (const service of SERVICES) {
    const use = all[service];
    const api = "$JS.API";
    const publish = new Set<string>([
      ...use.publishes,
      ...use.asks.map((s) => `${ns}.qry.${s}.>`),
      // Every service declares the namespace's streams at start (idempotent): look, create, update.
      `${api}.INFO`,
      ...Object.values(streams).flatMap((s) => [
        `${api}.STREAM.INFO.${s}`,
        `${api}.STREAM.CREATE.${s}`,
        `${api}.STREAM.UPDATE.${s}`,
      ]),
    ]);
    const subscribe = new Set<string>([
      // Replies: request-reply, JetStream API answers and publish acks, pulled messages.
      "_INBOX.>",
      ...use.listens,
      ...(use.answers ? [`${ns}.qry.${use.answers}.>`] : []),
    ]);
    for (const d of use.durables) {
      const stream = streams[d.stream];
      publish.add(`${api}.CONSUMER.INFO.${stream}.${d.durable}`);
      publish.add(`${api}.CONSUMER.CREATE.${stream}.${d.durable}.${d.filter}`);
      publish.add(`${api}.CONSUMER.MSG.NEXT.${stream}.${d.durable}`);
      publish.add(`$JS.ACK.${stream}.${d.durable}.>`);
      // A message whose deliveries ran out is read back and dead-lettered (libs/bus max-deliveries.ts).
      publish.add(`${api}.STREAM.MSG.GET.${stream}`);
      subscribe.add(`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${stream}.${d.durable}`);
      publish.add(`${ns}.dlq.${d.filter.replace(/(\.\*)+$/, ".>")}`);
    }
    for (const filter of use.ordered) {
      // Ordered consumers have generated names: any name, but only on this filter, no acks.
      publish.add(`${api}.CONSUMER.CREATE.${streams.events}.*.${filter}`);
      publish.add(`${api}.CONSUMER.INFO.${streams.events}.*`);
      publish.add(`${api}.CONSUMER.DELETE.${streams.events}.*`);
      publish.add(`${api}.CONSUMER.MSG.NEXT.${streams.events}.*`);
    }
    result[service] = {
      publish: [...publish].sort(),
      subscribe: [...subscribe].sort(),
      allowResponses: use.answers !== undefined,
    };
  }
  return result;
}

/**
 * The NATS user of a host's agent. Host ids are subject tokens (`[A-Za-z0-9_-]`), so the user name
 * and its password variable are derived from the id alone.
 */
export function hostUser(hostId: string): `host-${string}` {
  return `host-${hostId}`;
}

/**
 * The environment variable nats-server reads a user's password from: `$NATS_PASSWORD_VM_SERVICE`
 * for a service, `$NATS_PASSWORD_HOST_H1` for host h1's agent.
 */
export function passwordVariable(user: Service | `host-${string}`): string {
  return `NATS_PASSWORD_${user.toUpperCase().replace(/-/g, "_")}`;
}

/**
 * A fresh password for a NATS user. nats-server reads `$NATS_PASSWORD_<USER>` as configuration, not
 * as text: a value that begins with `-`, or reads as a number or a date (`12e3…`, `2024-…`), stops the
 * server. A letter first keeps it a string; base64url after it keeps it URL-safe (192 bits).
 */
export function randomNatsPassword(): string {
  return `n${randomBytes(24).toString("base64url")}`;
}

const quote = (s: string): string => JSON.stringify(s);

/**
 * The `accounts` block of nats-server's configuration: one account `MIKROM` with JetStream, a user
 * per service holding only its permissions, and one per host's agent (`host-<id>`) that reaches only
 * its host's commands and publishes only its host's facts; passwords from the server's environment
 * (never in the file).
 */
export function renderAuthConf(ns: string, hosts: readonly string[]): string {
  const perms = permissions(ns);
  const users: Array<[Service | `host-${string}`, Permissions]> = SERVICES.filter(
    (s) => s !== "provisioner",
  ).map((service) => [service, perms[service]]);
  for (const host of hosts) {
    if (!/^[A-Za-z0-9_-]+$/.test(host)) throw new Error(`host id "${host}" is not a subject token`);
    users.push([hostUser(host), permissions(ns, host).provisioner]);
  }
  const rendered = users.map(([user, p]) => {
    const list = (items: string[]): string => items.map((s) => `            ${quote(s)}`).join("\n");
    return [
      "      {",
      `        user: ${quote(user)}`,
      `        password: $${passwordVariable(user)}`,
      "        permissions: {",
      "          publish: { allow: [",
      list(p.publish),
      "          ] }",
      "          subscribe: { allow: [",
      list(p.subscribe),
      "          ] }",
      ...(p.allowResponses ? ["          allow_responses: true"] : []),
      "        }",
      "      }",
    ].join("\n");
  });
  return [
    "# Generated by deploy/src/generate.ts from deploy/src/nats-permissions.ts: do not edit by hand.",
    `# One account for namespace "${ns}", one user per service with only the subjects it uses, and one per host agent with only its host's.`,
    "# Passwords come from the server's environment (NATS_PASSWORD_<USER>).",
    "accounts {",
    "  MIKROM {",
    "    jetstream: enabled",
    "    users: [",
    rendered.join("\n"),
    "    ]",
    "  }",
    "}",
    "",
  ].join("\n");
}
