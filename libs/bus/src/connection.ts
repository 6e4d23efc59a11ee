import { createLogger, errorFields, type Logger } from "@mikrom/telemetry";
import { connect, type NatsConnection, type Status } from "@nats-io/transport-node";

export interface ConnectOptions {
  /** `nats://host:port`, or several for a cluster. */
  servers: string | string[];
  /** Shown by the server's monitoring: the service and its instance, e.g. `vm-service 7f3a`. */
  name: string;
  /** Between reconnect attempts (default 1 s; nats.js adds jitter). */
  reconnectTimeWaitMs?: number;
  /** For the first connection (default 5 s). */
  timeoutMs?: number;
  logger?: StatusLog;
  /** Keep trying when no server answers at first (a service started before NATS); default false. */
  waitOnFirstConnect?: boolean;
}

/**
 * Connects for good: reconnects forever (a service outlives NATS restarts) and logs every change of
 * connection state, so "why did nothing happen for 20 s" has an answer in the logs.
 */
export async function connectNats(options: ConnectOptions): Promise<NatsConnection> {
  const log = options.logger ?? createLogger("mikrom.bus.connection");
  const { servers, user, pass } = credentialsFromUrls(options.servers);
  const nc = await connect({
    servers,
    ...(user !== undefined && { user, pass }),
    name: options.name,
    // Without it every request builds an Error for an async stack trace: half the publish throughput here.
    noAsyncTraces: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: options.reconnectTimeWaitMs ?? 1_000,
    timeout: options.timeoutMs ?? 5_000,
    waitOnFirstConnect: options.waitOnFirstConnect ?? false,
  });
  log.info({ server: nc.getServer(), client_name: options.name }, "connected to NATS");
  void logStatus(nc, log);
  void nc.closed().then((error) => {
    if (error)
      log.error({ server: nc.getServer(), ...errorFields(error) }, "NATS connection closed by an error");
    else log.info({ client_name: options.name }, "NATS connection closed");
  });
  return nc;
}

/**
 * `nats://user:password@host:4222`: nats.js ignores credentials written in a server URL (it keeps only
 * host and port), so they are taken out here and sent as user and password. That keeps NATS_URL the
 * one variable a deployment sets, and each service's URL names its own NATS user (deploy/src/nats-permissions.ts).
 */
export function credentialsFromUrls(servers: string | string[]): {
  servers: string[];
  user?: string;
  pass?: string;
} {
  let user: string | undefined;
  let pass: string | undefined;
  const plain = (Array.isArray(servers) ? servers : servers.split(","))
    .map((s) => s.trim())
    .filter(Boolean)
    .map((server) => {
      const match = /^([a-z]+:\/\/)([^@/]*)@(.*)$/i.exec(server);
      if (!match) return server;
      const [, scheme, userinfo, rest] = match as unknown as [string, string, string, string];
      const colon = userinfo.indexOf(":");
      const u = decodeURIComponent(colon < 0 ? userinfo : userinfo.slice(0, colon));
      const p = colon < 0 ? undefined : decodeURIComponent(userinfo.slice(colon + 1));
      if (user !== undefined && (user !== u || pass !== p)) {
        throw new Error("NATS server URLs name different credentials; give one user for all of them");
      }
      user = u;
      pass = p;
      return `${scheme}${rest}`;
    });
  return { servers: plain, ...(user !== undefined && { user, pass }) };
}

type StatusLog = Pick<Logger, "debug" | "info" | "warn" | "error">;

async function logStatus(nc: NatsConnection, log: StatusLog): Promise<void> {
  for await (const status of nc.status()) {
    const { level, fields, message } = describeStatus(status);
    log[level](fields, message);
  }
}

/** How a change of connection state is logged: a disconnect is a warning, a reconnect good news. */
export function describeStatus(status: Status): {
  level: "debug" | "info" | "warn" | "error";
  fields: Record<string, unknown>;
  message: string;
} {
  switch (status.type) {
    case "disconnect":
      return {
        level: "warn",
        fields: { server: status.server },
        message: "disconnected from NATS, reconnecting",
      };
    case "reconnecting":
      return { level: "debug", fields: {}, message: "trying to reconnect to NATS" };
    case "reconnect":
      return { level: "info", fields: { server: status.server }, message: "reconnected to NATS" };
    case "error":
      return { level: "error", fields: errorFields(status.error), message: "NATS connection error" };
    case "staleConnection":
      return {
        level: "warn",
        fields: {},
        message: "NATS connection is stale (pings unanswered), reconnecting",
      };
    case "forceReconnect":
      return { level: "info", fields: {}, message: "forced NATS reconnect" };
    case "ldm":
      return {
        level: "warn",
        fields: { server: status.server },
        message: "NATS server in lame duck mode, moving",
      };
    case "slowConsumer":
      return {
        level: "warn",
        fields: { subject: status.sub.getSubject(), pending: status.pending },
        message: "slow NATS subscriber",
      };
    case "update":
      // Every reconnect brings one (the server lists itself): detail, not news.
      return {
        level: "debug",
        fields: { added: status.added, deleted: status.deleted },
        message: "NATS cluster changed",
      };
    case "ping":
      return {
        level: "debug",
        fields: { pending_pings: status.pendingPings },
        message: "NATS ping outstanding",
      };
    case "close":
      return { level: "debug", fields: {}, message: "NATS connection closing" };
  }
}
