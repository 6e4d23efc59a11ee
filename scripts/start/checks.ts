/**
 * What `npm start` checks before it creates anything: the servers it was pointed at answer, the
 * API's port is free, no other `npm start` runs from the same folder, and what it would run itself
 * is there. Each problem is one line naming the thing, its address and what to do.
 */
import { readFileSync } from "node:fs";
import {
  canInstallNatsServer,
  findNatsServer,
  HOW_TO_INSTALL_NATS,
  portFree,
  postgresBinaries,
  probeNats,
  probePostgres,
  serverAddress,
} from "@mikrom/infra";

export interface Plan {
  /** DATABASE_URL as given, or undefined: the embedded PostgreSQL. */
  readonly databaseUrl: string | undefined;
  /** NATS_URL as given, or undefined: a nats-server of Mikrom's own. */
  readonly natsUrl: string | undefined;
  /** A nats-server is needed and none is installed (it may be installed, see ensureNatsServer). */
  readonly natsMissing: boolean;
}

export function lockHolder(lockFile: string): number | undefined {
  try {
    const pid = Number(readFileSync(lockFile, "utf8").trim());
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return undefined;
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

export async function check(
  env: Readonly<Record<string, string | undefined>>,
  options: { lockFile: string; home: string; port: number; host: string },
): Promise<{ plan: Plan; problems: string[] }> {
  const given = (name: string): string | undefined => (env[name] ? env[name] : undefined);
  const databaseUrl = given("DATABASE_URL");
  const natsUrl = given("NATS_URL");
  const problems: string[] = [];

  const holder = lockHolder(options.lockFile);
  if (holder !== undefined) {
    problems.push(
      `Mikrom already runs from ${options.home} (pid ${holder}): stop it first, or set MIKROM_HOME to another folder`,
    );
  }

  const [portOk, pgProblem, natsProblem, pgBinaries] = await Promise.all([
    portFree(options.port, options.host),
    databaseUrl ? probePostgres(databaseUrl) : undefined,
    natsUrl ? probeNats(natsUrl) : undefined,
    databaseUrl
      ? undefined
      : postgresBinaries().then(
          () => undefined,
          (e: Error) => e.message,
        ),
  ]);
  if (!portOk) {
    problems.push(
      `the API's port ${options.host}:${options.port} is taken by another program: stop it, or set PORT to a free port`,
    );
  }
  if (databaseUrl && pgProblem) {
    const fix = pgProblem.absent
      ? "start it, or unset DATABASE_URL to use the embedded one"
      : "fix DATABASE_URL, or unset it to use the embedded one";
    problems.push(`PostgreSQL at ${serverAddress(databaseUrl, 5432)} ${pgProblem.what}: ${fix}`);
  }
  if (natsUrl && natsProblem) {
    const fix = natsProblem.absent
      ? "start it (nats-server -js), or unset NATS_URL to run one of Mikrom's own"
      : "fix NATS_URL, or unset it to run one of Mikrom's own";
    problems.push(`NATS at ${serverAddress(natsUrl, 4222)} ${natsProblem.what}: ${fix}`);
  }
  if (pgBinaries) problems.push(pgBinaries);
  if (Boolean(given("MIKROM_ADMIN_EMAIL")) !== Boolean(given("MIKROM_ADMIN_PASSWORD"))) {
    problems.push(
      "MIKROM_ADMIN_EMAIL and MIKROM_ADMIN_PASSWORD go together: set both, or neither to use the generated superuser",
    );
  }
  const natsMissing = !natsUrl && findNatsServer() === undefined;
  // Installing it is the one thing done after the checks pass (as root on Debian); say how elsewhere.
  if (natsMissing && !canInstallNatsServer())
    problems.push(`nats-server is not installed: ${HOW_TO_INSTALL_NATS}`);
  return { plan: { databaseUrl, natsUrl, natsMissing }, problems };
}
