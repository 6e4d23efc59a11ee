/**
 * The one-shot database setup of a deployment (compose's `db-setup`, Kubernetes' `mikrom-db-setup`
 * Job): with the admin's URL, a role and a database per service, each role owning its database only
 * (src/database-roles.ts). Its entry is services/audit/src/setup-databases.ts, which adds the audit
 * database (owned by a role of its own, its migrations run here). Outside src/: no service reads
 * these variables (deploy/src/env-reads.ts reads src/ only), `@mikrom/runtime/setup` imports it. Idempotent: run it again after
 * adding a host or changing a password. Passwords are never logged.
 *
 *   POSTGRES_ADMIN_URL      a superuser, or a role with CREATEROLE and CREATEDB
 *   SERVICE_DATABASE_URLS   the services' database URLs, and each host agent's (space or newline
 *                           separated): each names the role, its password and the database it owns
 */
import type { Logger } from "@mikrom/telemetry";
import { z } from "zod";
import { serverOf } from "../src/database.ts";
import { ensureServiceDatabase, type ServiceDatabase, serviceDatabaseOf } from "../src/database-roles.ts";
import { untilAvailable } from "../src/wait.ts";

const words = z
  .string()
  .default("")
  .transform((s) => s.split(/\s+/).filter(Boolean));
const Env = z.object({
  POSTGRES_ADMIN_URL: z.url(),
  SERVICE_DATABASE_URLS: words.pipe(z.array(z.url())),
});

/** Every database the environment asks for, with the role that is to own it. */
export function setupTargets(env: Readonly<Record<string, string | undefined>>): {
  adminUrl: string;
  targets: ServiceDatabase[];
} {
  const parsed = Env.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".") || "(env)"}: ${i.message}`);
    throw new Error(`the database setup's configuration is invalid:\n  ${problems.join("\n  ")}`);
  }
  const e = parsed.data;
  return { adminUrl: e.POSTGRES_ADMIN_URL, targets: e.SERVICE_DATABASE_URLS.map(serviceDatabaseOf) };
}

/** Makes each target's role and database in turn, waiting while PostgreSQL is away. */
export async function setupDatabases(
  adminUrl: string,
  targets: readonly ServiceDatabase[],
  log: Logger,
): Promise<void> {
  for (const target of targets) {
    const outcome = await untilAvailable(
      `PostgreSQL at ${serverOf(adminUrl)}`,
      () => ensureServiceDatabase(adminUrl, target),
      { log },
    );
    log.info(
      {
        role: target.role,
        ...(target.owner && { owner: target.owner.role }),
        database: target.database,
        role_state: outcome.role,
        database_state: outcome.database,
        adopted_objects: outcome.adopted,
      },
      "service database ready",
    );
  }
}
