/**
 * Subject and stream names. Everything hangs off a namespace ("mikrom" in production), so two
 * systems, or two tests, share one NATS server without seeing each other's messages.
 */
export interface Names {
  readonly namespace: string;
  readonly streams: { readonly commands: string; readonly events: string; readonly deadLetters: string };
  /** `<ns>.cmd.<service>.<verb>`; the provisioner's carry the host: `<ns>.cmd.provisioner.<hostId>.<verb>` */
  command(service: string, ...rest: string[]): string;
  /** `<ns>.evt.<context>.<entityId>.<EventType>` */
  event(context: string, entityId: string, type: string): string;
  /** Filter: every command to a service, `<ns>.cmd.<service>.>`, or to one host, `<ns>.cmd.<service>.<hostId>.*` */
  commandsTo(service: string, hostId?: string): string;
  /** Filter: a context's events, `<ns>.evt.<context>.*.*`, or one entity's, `<ns>.evt.<context>.<entityId>.*` */
  eventsOf(context: string, entityId?: string): string;
  /** The parts of an event subject of this namespace; null for any other subject. */
  eventParts(subject: string): EventParts | null;
  /** `<ns>.qry.<service>.<name>` (core NATS request-reply) */
  query(service: string, name: string): string;
  /** `<ns>.dlq.<original subject>` */
  deadLetter(subject: string): string;
  /** `<ns>.beat.<hostId>`: a host's heartbeat, on core NATS (news about now: no stream keeps it). */
  heartbeat(hostId: string): string;
  /** Filter: every host's heartbeat, `<ns>.beat.*` */
  readonly allHeartbeats: string;
  readonly allCommands: string;
  readonly allEvents: string;
  readonly allDeadLetters: string;
}

export interface EventParts {
  readonly context: string;
  readonly entityId: string;
  readonly type: string;
}

const TOKEN = /^[A-Za-z0-9_-]+$/;

function token(value: string, what: string): string {
  if (!TOKEN.test(value)) throw new Error(`${what} "${value}" is not a valid subject token`);
  return value;
}

export function names(namespace = "mikrom"): Names {
  const ns = token(namespace, "namespace");
  const prefix = ns.toUpperCase();
  return {
    namespace: ns,
    streams: { commands: `${prefix}_COMMANDS`, events: `${prefix}_EVENTS`, deadLetters: `${prefix}_DLQ` },
    command: (service, ...rest) =>
      [ns, "cmd", token(service, "service"), ...rest.map((r) => token(r, "command"))].join("."),
    event: (context, entityId, type) =>
      [ns, "evt", token(context, "context"), token(entityId, "entity id"), token(type, "event type")].join(
        ".",
      ),
    commandsTo: (service, hostId) =>
      [
        ns,
        "cmd",
        token(service, "service"),
        ...(hostId === undefined ? [">"] : [token(hostId, "host id"), "*"]),
      ].join("."),
    eventsOf: (context, entityId) =>
      [
        ns,
        "evt",
        token(context, "context"),
        entityId === undefined ? "*" : token(entityId, "entity id"),
        "*",
      ].join("."),
    eventParts: (subject) => {
      const parts = subject.split(".");
      if (parts.length !== 5 || parts[0] !== ns || parts[1] !== "evt") return null;
      const [, , context, entityId, type] = parts as [string, string, string, string, string];
      return { context, entityId, type };
    },
    query: (service, name) => [ns, "qry", token(service, "service"), token(name, "query")].join("."),
    deadLetter: (subject) => `${ns}.dlq.${subject}`,
    heartbeat: (hostId) => `${ns}.beat.${token(hostId, "host id")}`,
    allCommands: `${ns}.cmd.>`,
    allEvents: `${ns}.evt.>`,
    allDeadLetters: `${ns}.dlq.>`,
    allHeartbeats: `${ns}.beat.*`,
  };
}
