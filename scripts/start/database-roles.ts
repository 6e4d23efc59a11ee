/**
 * The PostgreSQL roles of `npm start`: each service connects as `<base>_<service>` (`mikrom_vm`…),
 * the host's provisioner as `<base>_provisioner_<host>`, which owns the service's database and nothing else (libs/runtime database-roles.ts), never as the
 * server's superuser. Passwords are fresh at every start, set on the roles and handed to the
 * services only in their environment. A `*_DATABASE_URL` given by the user is theirs: left as it is.
 */
import { randomBytes } from "node:crypto";
import {
  ensureServiceDatabase,
  hostDatabaseUrl,
  type ServiceDatabase,
  serviceDatabaseUrl,
  serviceUrl,
} from "@mikrom/runtime";
import { auditDatabase } from "../../services/audit/src/store/migrations.ts";
import type { ServiceName } from "../system.ts";

/** Each service's own variable and the suffix of its role and database names. */
const OWN: Record<ServiceName, { variable: string; suffix: string }> = {
  "api-gateway": { variable: "GATEWAY_DATABASE_URL", suffix: "gateway" },
  "vm-service": { variable: "VM_DATABASE_URL", suffix: "vm" },
  "ippool-service": { variable: "IPPOOL_DATABASE_URL", suffix: "ippool" },
  audit: { variable: "AUDIT_DATABASE_URL", suffix: "audit" },
  provisioner: { variable: "PROVISIONER_DATABASE_URL", suffix: "provisioner" },
};

const nameOf = (url: string): string => decodeURIComponent(new URL(url).pathname.slice(1));

/**
 * Makes every service's role and database on the server `adminUrl` names (a superuser, or a role
 * that may create roles), and returns the variables that point each service at its own. Undefined
 * when the admin may not create roles: every service then connects as `adminUrl`'s role, as before.
 */
export async function serviceDatabases(
  env: Readonly<Record<string, string | undefined>>,
  adminUrl: string,
  say: (line: string) => void,
): Promise<Partial<Record<ServiceName, Record<string, string>>> | undefined> {
  const result: Partial<Record<ServiceName, Record<string, string>>> = {};
  // The base database (`mikrom`) need not exist: the services' databases are derived from its name.
  const admin = new URL(adminUrl);
  admin.pathname = "/postgres";
  for (const [service, { variable, suffix }] of Object.entries(OWN) as [
    ServiceName,
    (typeof OWN)[ServiceName],
  ][]) {
    if (env[variable]) continue;
    const database =
      service === "provisioner"
        ? nameOf(hostDatabaseUrl(adminUrl, env.MIKROM_HOST_ID ?? "local"))
        : nameOf(serviceDatabaseUrl(adminUrl, suffix));
    const target: ServiceDatabase = {
      database,
      // A host's role is named as its database (`mikrom_provisioner_<host>`): it opens no other host's.
      role: service === "provisioner" ? database : nameOf(serviceDatabaseUrl(adminUrl, suffix)),
      password: randomBytes(24).toString("base64url"),
    };
    try {
      // The audit log belongs to a role of its own, as which its migrations run here: audit's role
      // may only add to it and read it (the same setup as compose's and Kubernetes').
      await ensureServiceDatabase(admin.toString(), service === "audit" ? auditDatabase(target) : target);
    } catch (error) {
      if ((error as { code?: string }).code !== "42501") throw error;
      say(
        `PostgreSQL: DATABASE_URL's role may not create roles, so every service connects as it; ` +
          "give it CREATEROLE (or use a superuser) for a role per service",
      );
      return undefined;
    }
    result[service] = {
      // The base name as given (the services derive their database from it), with their own role.
      DATABASE_URL: serviceUrl(adminUrl, { ...target, database: nameOf(adminUrl) || "mikrom" }),
      [variable]: serviceUrl(adminUrl, target),
    };
  }
  return result;
}
