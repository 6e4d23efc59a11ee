/**
 * The Secrets the Kubernetes manifests name and do not ship: the operator creates them before the
 * first `kubectl apply -k`, with this script or by any other means that yields the same names and
 * keys (`kubectl create secret`, sealed-secrets, an external-secrets operator syncing them from a
 * vault). The script prints them with fresh random values, never written to a file:
 *
 *   node_modules/.bin/node deploy/src/k8s-secrets.ts admin@your.domain | kubectl apply -f -
 *
 * A service's NATS_URL carries the password its NATS user has in `nats-passwords`. Its database
 * URLs carry its own PostgreSQL role (`mikrom_<service>`) and that role's password, which the
 * `mikrom-db-setup` Job sets from these same URLs; the owner from `mikrom-db-owner` is the Job's
 * admin and no service's. A hand-made set must keep those pairs equal. Run it once: applied again
 * it would change every password (the NATS ones in auth.conf's Secret too).
 */
import { randomBytes } from "node:crypto";
import { stringify } from "yaml";
import type { K8sObject } from "./k8s.ts";
import { passwordVariable, SERVICES, type Service } from "./nats-permissions.ts";

export interface OperatorSecret {
  readonly name: string;
  readonly type: "Opaque" | "kubernetes.io/basic-auth";
  /** Each key, and what it holds. */
  readonly keys: Readonly<Record<string, string>>;
}

const NAMESPACE = "mikrom";
const DB_HOST = "mikrom-db-rw";
const natsUrl = "NATS URL with the service's user and its password from nats-passwords";
/**
 * Each service's PostgreSQL role: `mikrom_<suffix>`, as libs/runtime derives its database name. The
 * provisioners' `mikrom_provisioner` names no role of its own: each agent connects as its host's
 * `mikrom_provisioner_<node>` (libs/runtime `hostDatabaseUrl`), with the password of this Secret.
 */
export const DATABASE_ROLE: Record<Service, string> = {
  "api-gateway": "mikrom_gateway",
  "vm-service": "mikrom_vm",
  "ippool-service": "mikrom_ippool",
  audit: "mikrom_audit",
  provisioner: "mikrom_provisioner",
};
const dbUrl = (service: Service, db: string): string =>
  `postgres://${DATABASE_ROLE[service]}:<its password>@${DB_HOST}:5432/${db}`;
/**
 * Each service's own database (owned by its role), after the shared base (`DATABASE_URL`). The
 * provisioners' are per host (`mikrom_provisioner_<node>`, owned by the host's role of that name),
 * derived from the base.
 */
export const OWN_DATABASE: Partial<Record<Service, [string, string]>> = {
  "api-gateway": ["GATEWAY_DATABASE_URL", "mikrom_gateway"],
  "vm-service": ["VM_DATABASE_URL", "mikrom_vm"],
  "ippool-service": ["IPPOOL_DATABASE_URL", "mikrom_ippool"],
  audit: ["AUDIT_DATABASE_URL", "mikrom_audit"],
};

export const OPERATOR_SECRETS: readonly OperatorSecret[] = [
  {
    name: "nats-passwords",
    type: "Opaque",
    keys: Object.fromEntries(SERVICES.map((s) => [passwordVariable(s), `${s}'s NATS password, random`])),
  },
  {
    name: "mikrom-db-owner",
    type: "kubernetes.io/basic-auth",
    keys: {
      username: "mikrom",
      password: "random; CloudNativePG makes the owner with it (the database setup's admin only)",
    },
  },
  ...SERVICES.map((service): OperatorSecret => {
    const own = OWN_DATABASE[service];
    return {
      name: `${service}-secrets`,
      type: "Opaque",
      keys: {
        NATS_URL: natsUrl,
        DATABASE_URL: dbUrl(service, "mikrom"),
        ...(own && { [own[0]]: dbUrl(service, own[1]) }),
        ...(service === "api-gateway" && {
          JWT_SECRET: "random, 48 bytes (`openssl rand -base64 48`)",
          MIKROM_ADMIN_EMAIL: "the first superuser's email",
          MIKROM_ADMIN_PASSWORD: "random (`openssl rand -base64 18`)",
        }),
      },
    };
  }),
];

export interface SecretObject extends K8sObject {
  readonly type: string;
  readonly metadata: { name: string; namespace: string };
  readonly stringData: Record<string, string>;
}

const random = (bytes: number): string => randomBytes(bytes).toString("base64url");

/** The Secrets with fresh values; base64url keeps every password usable inside a URL as it is. */
export function operatorSecrets(options: { adminEmail: string }): SecretObject[] {
  const nats = Object.fromEntries(SERVICES.map((s) => [s, random(24)])) as Record<Service, string>;
  const postgres = Object.fromEntries(SERVICES.map((s) => [s, random(24)])) as Record<Service, string>;
  const owner = random(24);
  // The provisioner runs on the host network: full service names (see its DaemonSet).
  const host = (name: string, service: Service): string =>
    service === "provisioner" ? `${name}.${NAMESPACE}.svc.cluster.local` : name;
  const values: Record<string, Record<string, string>> = {
    "nats-passwords": Object.fromEntries(SERVICES.map((s) => [passwordVariable(s), nats[s]])),
    "mikrom-db-owner": { username: "mikrom", password: owner },
  };
  for (const service of SERVICES) {
    const db = (name: string): string =>
      `postgres://${DATABASE_ROLE[service]}:${postgres[service]}@${host(DB_HOST, service)}:5432/${name}`;
    const own = OWN_DATABASE[service];
    values[`${service}-secrets`] = {
      NATS_URL: `nats://${service}:${nats[service]}@${host("nats", service)}:4222`,
      DATABASE_URL: db("mikrom"),
      ...(own && { [own[0]]: db(own[1]) }),
      ...(service === "api-gateway" && {
        JWT_SECRET: randomBytes(48).toString("base64"),
        MIKROM_ADMIN_EMAIL: options.adminEmail,
        MIKROM_ADMIN_PASSWORD: random(18),
      }),
    };
  }
  return OPERATOR_SECRETS.map((secret) => ({
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: secret.name, namespace: NAMESPACE },
    type: secret.type,
    stringData: values[secret.name] ?? {},
  }));
}

/** The names of the Secrets `objects` refer to: env, envFrom, volumes, the database's bootstrap. */
export function secretsNamed(objects: readonly K8sObject[]): string[] {
  const names = new Set<string>();
  const visit = (node: unknown, key: string): void => {
    if (Array.isArray(node)) {
      for (const item of node) visit(item, key);
      return;
    }
    if (!node || typeof node !== "object") return;
    const record = node as Record<string, unknown>;
    const named = (record.name ?? record.secretName) as unknown;
    if (["secretRef", "secretKeyRef", "secret"].includes(key) && typeof named === "string") names.add(named);
    for (const [k, v] of Object.entries(record)) visit(v, k);
  };
  for (const o of objects) if (o.kind !== "Secret") visit(o, "");
  return [...names];
}

if (import.meta.main) {
  const adminEmail = process.argv[2];
  if (!adminEmail?.includes("@")) {
    process.stderr.write(
      "usage: node_modules/.bin/node deploy/src/k8s-secrets.ts <first superuser's email> | kubectl apply -f -\n",
    );
    process.exit(2);
  }
  const docs = operatorSecrets({ adminEmail }).map((s) => stringify(s));
  process.stdout.write(`${docs.join("---\n")}`);
}
