/**
 * The hypervisor nodes of the Kubernetes deployment, as the operator lists them in
 * deploy/k8s/hosts.yaml, and the names each host's identity goes by: its host id, its Secret, its
 * NATS user and its PostgreSQL role. generate.ts renders the per-host manifests from this list
 * (k8s-host-manifests.ts); k8s-secrets.ts prints each host's Secret.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { hostDatabaseUrl } from "@mikrom/runtime";
import { parse } from "yaml";
import { hostUser } from "./nats-permissions.ts";

const hostsPath = join(import.meta.dirname, "..", "k8s", "hosts.yaml");

export interface K8sHost {
  /** The node's name (`kubectl get nodes`): its agent runs there and nowhere else. */
  readonly node: string;
  /** MIKROM_HOST_ID: the node's name with dots as dashes, as the agent derives one from a hostname. */
  readonly id: string;
  /** The operator's Secret `provisioner-<id>`, holding this host's passwords and no other's. */
  readonly secret: string;
  /** Its NATS user, `host-<id>` (nats-permissions.ts: its own commands, its own facts). */
  readonly natsUser: `host-${string}`;
  /** Its PostgreSQL role and the database it owns, named alike (libs/runtime hostDatabaseUrl). */
  readonly role: string;
}

/** A node name as Kubernetes allows one: a DNS subdomain, lowercase. */
const NODE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** The id names objects and is a label value: a DNS label, at most 63 characters. */
const MAX_ID = 63;

/** The names of the host on node `node`; throws, saying why, for a name that cannot be one. */
export function k8sHost(node: string): K8sHost {
  if (node.length > 253 || !NODE_NAME.test(node)) {
    throw new Error(`"${node}" is not a Kubernetes node name (lowercase letters, digits, '-' and '.')`);
  }
  const id = node.replaceAll(".", "-");
  if (id.length > MAX_ID) throw new Error(`node "${node}": its host id "${id}" is over ${MAX_ID} characters`);
  const database = new URL(hostDatabaseUrl("postgres://db/mikrom", id)).pathname.slice(1);
  return {
    node,
    id,
    secret: `provisioner-${id}`,
    natsUser: hostUser(id),
    role: decodeURIComponent(database),
  };
}

/** The hosts the file lists, in its order; an unknown key, a bad name or two nodes of one id is an error. */
export function loadK8sHosts(text: string = readFileSync(hostsPath, "utf8")): K8sHost[] {
  const file = (parse(text) ?? {}) as Record<string, unknown>;
  const extra = Object.keys(file).filter((k) => k !== "nodes");
  if (extra.length) throw new Error(`${hostsPath}: unknown key ${extra.join(", ")} (only "nodes")`);
  const nodes = file.nodes ?? [];
  if (!Array.isArray(nodes) || nodes.some((n) => typeof n !== "string")) {
    throw new Error(`${hostsPath}: "nodes" is a list of node names`);
  }
  const hosts = (nodes as string[]).map(k8sHost);
  const ids = hosts.map((h) => h.id);
  const twice = ids.filter((id, i) => ids.indexOf(id) !== i);
  if (twice.length) throw new Error(`${hostsPath}: host id ${twice.join(", ")} is listed twice`);
  return hosts;
}

/** The environment variable name part for a host: `kvm-node-1` → `KVM_NODE_1`. */
export const envToken = (host: K8sHost): string => host.id.toUpperCase().replaceAll("-", "_");
