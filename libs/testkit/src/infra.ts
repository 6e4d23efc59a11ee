import { connect } from "@nats-io/transport-node";
import pg from "pg";
import { InfrastructureMissing, reason } from "./errors.ts";

export const LOCAL_NATS_URL = "nats://127.0.0.1:4222";
export const LOCAL_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/postgres";

export interface Infrastructure {
  natsUrl: string;
  databaseUrl: string;
  /** Stops what this process started (testcontainers); a no-op for servers that were already running. */
  stop(): Promise<void>;
}

export async function probePostgres(url: string): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query("select 1");
    return undefined;
  } catch (error) {
    return reason(error);
  } finally {
    await client.end().catch(() => {});
  }
}

export async function probeNats(url: string): Promise<string | undefined> {
  try {
    const nc = await connect({ servers: url, timeout: 3000, reconnect: false });
    try {
      const info = nc.info;
      if (!info?.jetstream) return "JetStream is not enabled on this server (start nats-server with -js)";
      return undefined;
    } finally {
      await nc.close();
    }
  } catch (error) {
    return reason(error);
  }
}

async function dockerAnswers(): Promise<boolean> {
  try {
    const { getContainerRuntimeClient } = await import("testcontainers");
    await getContainerRuntimeClient();
    return true;
  } catch {
    return false;
  }
}

async function startContainers(): Promise<Infrastructure> {
  const { GenericContainer, Wait } = await import("testcontainers");
  const [postgres, nats] = await Promise.all([
    new GenericContainer("postgres:15-alpine")
      .withEnvironment({ POSTGRES_HOST_AUTH_METHOD: "trust" })
      .withExposedPorts(5432)
      .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2))
      .start(),
    new GenericContainer("nats:2.10-alpine")
      .withCommand(["-js"])
      .withExposedPorts(4222)
      .withWaitStrategy(Wait.forLogMessage(/Server is ready/))
      .start(),
  ]);
  return {
    natsUrl: `nats://${nats.getHost()}:${nats.getMappedPort(4222)}`,
    databaseUrl: `postgres://postgres@${postgres.getHost()}:${postgres.getMappedPort(5432)}/postgres`,
    async stop() {
      await Promise.all([postgres.stop(), nats.stop()]);
    },
  };
}

const HOW_TO_START = {
  postgres:
    "Start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n" +
    "  or point DATABASE_URL at a running server (postgres://user@host:port/db).",
  nats:
    "Start it with: start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- " +
    "-a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log\n" +
    "  or point NATS_URL at a running server with JetStream (nats://host:port).",
};

/**
 * Finds NATS (with JetStream) and PostgreSQL for a test run: the URLs in NATS_URL / DATABASE_URL
 * when set, else the local servers, else containers when a Docker engine answers. When none
 * works it fails at once, naming what is missing and how to start it.
 */
export async function resolveInfrastructure(env = process.env): Promise<Infrastructure> {
  const natsUrl = env.NATS_URL ?? LOCAL_NATS_URL;
  const databaseUrl = env.DATABASE_URL ?? LOCAL_DATABASE_URL;
  const [natsProblem, postgresProblem] = await Promise.all([probeNats(natsUrl), probePostgres(databaseUrl)]);
  if (!natsProblem && !postgresProblem) return { natsUrl, databaseUrl, stop: async () => {} };

  const explicit = env.NATS_URL !== undefined || env.DATABASE_URL !== undefined;
  if (!explicit && (await dockerAnswers())) return startContainers();

  const missing: string[] = [];
  if (postgresProblem) {
    missing.push(
      `PostgreSQL is not reachable at ${redact(databaseUrl)} (${postgresProblem}).\n  ${HOW_TO_START.postgres}`,
    );
  }
  if (natsProblem) {
    missing.push(`NATS is not usable at ${natsUrl} (${natsProblem}).\n  ${HOW_TO_START.nats}`);
  }
  const docker = explicit ? "" : "\nNo Docker engine answers either, so testcontainers cannot stand in.";
  throw new InfrastructureMissing(`the tests need real infrastructure:\n${missing.join("\n")}${docker}`);
}

function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]+@/, "//$1:***@");
}
