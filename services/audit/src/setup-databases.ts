/**
 * The one-shot database setup of a deployment (compose's `db-setup`, Kubernetes' `mikrom-db-setup`
 * Job), from audit's image: `node services/audit/src/setup-databases.ts`. A role and a database per
 * service (libs/runtime setup/databases.ts, with the variables it names), and the audit database,
 * which its service does not own: it belongs to `<database>_owner` (NOLOGIN), as which this setup
 * runs audit's migrations, and the service's role may only add to the log and read it
 * (store/migrations.ts, auditDatabase). The admin's URL stays here; no service gets it.
 *
 *   AUDIT_DATABASE_URL   the audit service's URL: its role, password and database
 */

import type { ServiceDatabase } from "@mikrom/runtime";
import { serviceDatabaseOf } from "@mikrom/runtime";
import { setupTargets as serviceTargets, setupDatabases } from "@mikrom/runtime/setup";
import { createLogger, errorFields } from "@mikrom/telemetry";
import { auditDatabase } from "./store/migrations.ts";

/** Every database the environment asks for, the audit database with its owner. */
export function setupTargets(env: Readonly<Record<string, string | undefined>>): {
  adminUrl: string;
  targets: ServiceDatabase[];
} {
  const { adminUrl, targets } = serviceTargets(env);
  const audit = env.AUDIT_DATABASE_URL;
  return { adminUrl, targets: [...targets, ...(audit ? [auditDatabase(serviceDatabaseOf(audit))] : [])] };
}

if (import.meta.main) {
  const log = createLogger("mikrom.db-setup");
  try {
    const { adminUrl, targets } = setupTargets(process.env);
    await setupDatabases(adminUrl, targets, log);
  } catch (error) {
    log.fatal(errorFields(error), "database setup failed");
    process.exitCode = 1;
  }
}
