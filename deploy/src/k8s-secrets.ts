/**
 * The Secrets the Kubernetes manifests name and do not ship: the operator creates them before the
 * first `kubectl apply -k`, with this script or by any other means that yields the same names and
 * keys (`kubectl create secret`, sealed-secrets, an external-secrets operator syncing them from a
 * vault). The script prints them with fresh random values, never written to a file:
 *
 *   node_modules/.bin/node deploy/src/k8s-secrets.ts admin@your.domain | kubectl apply -f -
 *   node_modules/.bin/node deploy/src/k8s-secrets.ts --host <node> | kubectl apply -f -
 *
 * The first prints every Secret, those of the hosts in deploy/k8s/hosts.yaml included; the second
 * one host's, for a node added later. A service's NATS_URL carries the password its NATS user has in
 * `nats-passwords`. Its database URLs carry its own PostgreSQL role (`mikrom_<service>`) and that
 * role's password, which the `mikrom-db-setup` Job sets from these same URLs; the owner from
 * `mikrom-db-owner` is the Job's admin and no service's. A hand-made set must keep those pairs equal.
 * A host's Secret holds two passwords only: its manifests build its URLs, and give the NATS server
 * and the Job their copies, from them. Run the first form once: applied again it would change every
 * password (the NATS ones in auth.conf's Secret too).
 */
import { randomBytes } from "node:crypto";
import { stringify } from "yaml";
import type { K8sObject } from "./k8s.ts";
import { type K8sHost, k8sHost, loadK8sHosts } from "./k8s-hosts.ts";
import { passwordVariable, randomNatsPassword, SERVICES, type Service } from "./nats-permissions.ts";

export interface OperatorSecret {
  readonly name: string;
  readonly type: "Opaque" | "kubernetes.io/basic-auth";
  /** Each key, and what it holds. */
  readonly keys: Readonly<Record<string, string>>;
}

export const NAMESPACE = "mikrom";
export const DB_HOST = "mikrom-db-rw";
/** The services with one Secret each; the provisioners have one per host (HOST_SECRET_KEYS). */
export type Worker = Exclude<Service, "provisioner">;
export const WORKERS = SERVICES.filter((s): s is Worker => s !== "provisioner");

const natsUrl = "NATS URL with the service's user and its password from nats-passwords";
/** Each service's PostgreSQL role: `mikrom_<suffix>`, as libs/runtime derives its database name. */
export const DATABASE_ROLE: Record<Worker, string> = {
  "api-gateway": "mikrom_gateway",
  "vm-service": "mikrom_vm",
  "ippool-service": "mikrom_ippool",
  audit: "mikrom_audit",
};
const dbUrl = (service: Worker, db: string): string =>
  `postgres://${DATABASE_ROLE[service]}:<its password>@${DB_HOST}:5432/${db}`;
/** Each service's own database (owned by its role), after the shared base (`DATABASE_URL`). */
export const OWN_DATABASE: Record<Worker, [string, string]> = {
  "api-gateway": ["GATEWAY_DATABASE_URL", "mikrom_gateway"],
  "vm-service": ["VM_DATABASE_URL", "mikrom_vm"],
  "ippool-service": ["IPPOOL_DATABASE_URL", "mikrom_ippool"],
  audit: ["AUDIT_DATABASE_URL", "mikrom_audit"],
};

/** The Secrets of a deployment whatever its hosts. */
export const OPERATOR_SECRETS: readonly OperatorSecret[] = [
  {
    name: "nats-passwords",
    type: "Opaque",
    keys: Object.fromEntries(WORKERS.map((s) => [passwordVariable(s), `${s}'s NATS password, random`])),
  },
  {
    name: "mikrom-db-owner",
    type: "kubernetes.io/basic-auth",
    keys: {
      username: "mikrom",
      password: "random; CloudNativePG makes the owner with it (the database setup's admin only)",
    },
  },
  ...WORKERS.map((service): OperatorSecret => {
    const own = OWN_DATABASE[service];
    return {
      name: `${service}-secrets`,
      type: "Opaque",
      keys: {
        NATS_URL: natsUrl,
        DATABASE_URL: dbUrl(service, "mikrom"),
        [own[0]]: dbUrl(service, own[1]),
        ...(service === "api-gateway" && {
          JWT_SECRET: "random, 48 bytes (`openssl rand -base64 48`)",
          MIKROM_ADMIN_EMAIL: "the first superuser's email",
          MIKROM_ADMIN_PASSWORD: "random (`openssl rand -base64 18`)",
        }),
      },
    };
  }),
];

/**
 * The keys of each host's Secret, `provisioner-<host id>`: passwords only, URL-safe, which the
 * manifests put in the agent's URLs, the NATS server's environment and the setup Job's. Nothing
 * else reads another host's.
 */
export const HOST_SECRET_KEYS = {
  NATS_PASSWORD:
    "the host's NATS user's password (`host-<host id>`), random, URL-safe, letters only (`openssl rand -hex 32 | tr 0-9 g-p`)",
  POSTGRES_PASSWORD:
    "the host's PostgreSQL role's password (`mikrom_provisioner_<host id>`), random, URL-safe (`openssl rand -hex 32`)",
} as const;

export interface SecretObject extends K8sObject {
  readonly type: string;
  readonly metadata: { name: string; namespace: string };
  readonly stringData: Record<string, string>;
}

const random = (bytes: number): string => randomBytes(bytes).toString("base64url");

const secretObject = (name: string, type: string, stringData: Record<string, string>): SecretObject => ({
  apiVersion: "v1",
  kind: "Secret",
  metadata: { name, namespace: NAMESPACE },
  type,
  stringData,
});

/** One host's Secret with fresh passwords; base64url keeps them usable inside a URL as they are. */
export function hostSecret(host: K8sHost): SecretObject {
  return secretObject(host.secret, "Opaque", {
    NATS_PASSWORD: randomNatsPassword(),
    POSTGRES_PASSWORD: random(24),
  });
}

/** Every Secret, the hosts' included, with fresh values. */
export function operatorSecrets(options: { adminEmail: string; hosts: readonly K8sHost[] }): SecretObject[] {
  const nats = Object.fromEntries(WORKERS.map((s) => [s, randomNatsPassword()])) as Record<Worker, string>;
  const postgres = Object.fromEntries(WORKERS.map((s) => [s, random(24)])) as Record<Worker, string>;
  const owner = random(24);
  const values: Record<string, Record<string, string>> = {
    "nats-passwords": Object.fromEntries(WORKERS.map((s) => [passwordVariable(s), nats[s]])),
    "mikrom-db-owner": { username: "mikrom", password: owner },
  };
  for (const service of WORKERS) {
    const db = (name: string): string =>
      `postgres://${DATABASE_ROLE[service]}:${postgres[service]}@${DB_HOST}:5432/${name}`;
    const own = OWN_DATABASE[service];
    values[`${service}-secrets`] = {
      NATS_URL: `nats://${service}:${nats[service]}@nats:4222`,
      DATABASE_URL: db("mikrom"),
      [own[0]]: db(own[1]),
      ...(service === "api-gateway" && {
        JWT_SECRET: randomBytes(48).toString("base64"),
        MIKROM_ADMIN_EMAIL: options.adminEmail,
        MIKROM_ADMIN_PASSWORD: random(18),
      }),
    };
  }
  return [
    ...OPERATOR_SECRETS.map((secret) => secretObject(secret.name, secret.type, values[secret.name] ?? {})),
    ...options.hosts.map(hostSecret),
  ];
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

const USAGE = [
  "usage: node_modules/.bin/node deploy/src/k8s-secrets.ts <first superuser's email> | kubectl apply -f -",
  "       node_modules/.bin/node deploy/src/k8s-secrets.ts --host <node name> | kubectl apply -f -",
  "",
].join("\n");

if (import.meta.main) {
  const [first, node] = process.argv.slice(2);
  let secrets: SecretObject[] | undefined;
  try {
    if (first === "--host" && node) secrets = [hostSecret(k8sHost(node))];
    else if (first?.includes("@")) secrets = operatorSecrets({ adminEmail: first, hosts: loadK8sHosts() });
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`);
    process.exit(2);
  }
  if (!secrets) {
    process.stderr.write(USAGE);
    process.exit(2);
  }
  process.stdout.write(secrets.map((s) => stringify(s)).join("---\n"));
}
