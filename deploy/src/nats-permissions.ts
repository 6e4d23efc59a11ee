/**
 * The one source of truth for what each service may do on NATS: its publish and subscribe
 * permissions, derived from the subjects, streams and durable consumers the services use
 * (ARCHITECTURE.md §2; the durables are named in each service's service.ts). `generate.ts` renders
 * it to `deploy/nats/auth.conf`, which compose and the Kubernetes manifests both include, and the
 * permission tests start a real nats-server with that same file.
 */

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
  /** The query service name it answers for, if any. */
  answers?: string;
  durables: Durable[];
  /** Ephemeral ordered consumers (the gateway's event feed) on these filters of the events stream. */
  ordered: string[];
}

function uses(ns: string): Record<Service, Use> {
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
      // The `wait` query listens to one VM's events.
      listens: [`${ns}.evt.vm.>`],
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
      publishes: [`${ns}.evt.provisioner.>`, `${ns}.evt.host.>`],
      listens: [],
      asks: [],
      answers: "provisioner",
      // `provisioner-<hostId>` on `<ns>.cmd.provisioner.<hostId>.*`: the host is known only at run time.
      durables: [{ stream: "commands", durable: "*", filter: `${ns}.cmd.provisioner.*.*` }],
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

/** Each service's permissions in namespace `ns`. */
export function permissions(ns = "mikrom"): Record<Service, Permissions> {
  const streams = streamNames(ns);
  const all = uses(ns);
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

/** The environment variable nats-server reads a service's password from (`$NATS_PASSWORD_VM_SERVICE`). */
export function passwordVariable(service: Service): string {
  return `NATS_PASSWORD_${service.toUpperCase().replace(/-/g, "_")}`;
}

const quote = (s: string): string => JSON.stringify(s);

/**
 * The `accounts` block of nats-server's configuration: one account `MIKROM` with JetStream, a user
 * per service holding only its permissions, passwords from the server's environment (never in the file).
 */
export function renderAuthConf(ns = "mikrom"): string {
  const perms = permissions(ns);
  const users = SERVICES.map((service) => {
    const p = perms[service];
    const list = (items: string[]): string => items.map((s) => `            ${quote(s)}`).join("\n");
    return [
      "      {",
      `        user: ${quote(service)}`,
      `        password: $${passwordVariable(service)}`,
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
    `# One account for namespace "${ns}", one user per service with only the subjects it uses.`,
    "# Passwords come from the server's environment (NATS_PASSWORD_<SERVICE>).",
    "accounts {",
    "  MIKROM {",
    "    jetstream: enabled",
    "    users: [",
    users.join("\n"),
    "    ]",
    "  }",
    "}",
    "",
  ].join("\n");
}
