import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  canInstallNatsServer,
  ensureNatsServer,
  findNatsServer,
  HOW_TO_INSTALL_NATS,
  type OwnServers,
  probeNats,
  probePostgres,
  serverAddress,
  startOwnServers,
} from "@mikrom/infra";
import { InfrastructureMissing } from "./errors.ts";

export const LOCAL_NATS_URL = "nats://127.0.0.1:4222";
export const LOCAL_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/postgres";

export interface Infrastructure {
  natsUrl: string;
  databaseUrl: string;
  /** What was started for this run: `embedded` PostgreSQL, a `spawned` nats-server; `found` otherwise. */
  postgres: "found" | "embedded";
  nats: "found" | "spawned";
  /** Stops what this run started (and removes its files); a no-op for servers that were already running. */
  stop(): Promise<void>;
}

/**
 * Finds NATS (with JetStream) and PostgreSQL for a test run. NATS_URL / DATABASE_URL when set, and
 * then they must answer: a run never quietly goes elsewhere. Unset, the local servers when they
 * answer (127.0.0.1:4222, 127.0.0.1:5432 as postgres), else servers of the run's own: an embedded
 * PostgreSQL (without fsync: the run's data is thrown away) and a nats-server with JetStream, in a
 * temporary folder removed at the end. When one cannot be had the run stops at once, saying why.
 */
export async function resolveInfrastructure(
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<Infrastructure> {
  const givenNats = env.NATS_URL || undefined;
  const givenDatabase = env.DATABASE_URL || undefined;
  const natsUrl = givenNats ?? LOCAL_NATS_URL;
  const databaseUrl = givenDatabase ?? LOCAL_DATABASE_URL;
  const [natsProblem, postgresProblem] = await Promise.all([probeNats(natsUrl), probePostgres(databaseUrl)]);

  const problems: string[] = [];
  if (givenDatabase && postgresProblem) {
    problems.push(
      `PostgreSQL at ${serverAddress(databaseUrl, 5432)} ${postgresProblem.what}: start it, ` +
        "or unset DATABASE_URL to let the tests use the local server or an embedded one",
    );
  }
  if (givenNats && natsProblem) {
    problems.push(
      `NATS at ${serverAddress(natsUrl, 4222)} ${natsProblem.what}: start it (nats-server -js), ` +
        "or unset NATS_URL to let the tests use the local server or one of their own",
    );
  }
  const ownPostgres = !givenDatabase && postgresProblem !== undefined;
  const ownNats = !givenNats && natsProblem !== undefined;
  if (ownNats && !findNatsServer() && !canInstallNatsServer()) {
    problems.push(
      `no NATS answers at ${LOCAL_NATS_URL} and nats-server is not installed: ${HOW_TO_INSTALL_NATS}`,
    );
  }
  if (problems.length > 0) {
    throw new InfrastructureMissing(`the tests need real infrastructure:\n  ${problems.join("\n  ")}`);
  }
  if (!ownPostgres && !ownNats) {
    return { natsUrl, databaseUrl, postgres: "found", nats: "found", stop: async () => {} };
  }

  const home = await mkdtemp(join(tmpdir(), "mikrom-test-servers-"));
  let servers: OwnServers;
  try {
    const binary = ownNats
      ? (findNatsServer() ?? (await ensureNatsServer((l) => process.stderr.write(`${l}\n`))))
      : undefined;
    servers = await startOwnServers({
      home,
      ...(ownPostgres && { postgres: { database: "postgres", durable: false } }),
      ...(binary && { nats: { binary } }),
    });
  } catch (error) {
    await rm(home, { recursive: true, force: true });
    throw new InfrastructureMissing(`the tests' own servers did not start: ${(error as Error).message}`);
  }
  return {
    natsUrl: servers.nats?.url ?? natsUrl,
    databaseUrl: servers.postgres?.url ?? databaseUrl,
    postgres: ownPostgres ? "embedded" : "found",
    nats: ownNats ? "spawned" : "found",
    async stop() {
      await servers.stop();
      await rm(home, { recursive: true, force: true });
    },
  };
}
