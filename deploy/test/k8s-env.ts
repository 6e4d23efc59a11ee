/** What a container of the rendered manifests gets in its environment, as the kubelet would give it. */
import type { K8sObject } from "../src/k8s.ts";
import type { SecretObject } from "../src/k8s-secrets.ts";

// biome-ignore lint/suspicious/noExplicitAny: rendered manifests are walked as plain data
type Any = any;

/**
 * The environment of the first container of `kind`/`name`: envFrom sources, then `env` in order, with
 * `$(VAR)` expanded from the variables before it (unknown ones left as written, `$$` a `$`, as
 * Kubernetes does) and Secrets' values taken from `secrets`.
 */
export function containerEnv(
  objects: readonly K8sObject[],
  secrets: readonly SecretObject[],
  kind: string,
  name: string,
): Record<string, string> {
  const find = (k: string, n: string): Any => objects.find((o) => o.kind === k && o.metadata.name === n);
  const secret = (n: string): Record<string, string> => {
    const found = secrets.find((s) => s.metadata.name === n);
    if (!found) throw new Error(`${kind}/${name} names Secret ${n}, which is not among the operator's`);
    return found.stringData;
  };
  const workload = find(kind, name);
  if (!workload) throw new Error(`no ${kind}/${name} in the manifests`);
  const container = workload.spec.template.spec.containers[0];
  const env: Record<string, string> = {};
  for (const from of container.envFrom ?? []) {
    if (from.secretRef) Object.assign(env, secret(from.secretRef.name));
    else Object.assign(env, find("ConfigMap", from.configMapRef.name).data);
  }
  for (const e of container.env ?? []) {
    const ref = e.valueFrom?.secretKeyRef;
    if (ref) env[e.name] = secret(ref.name)[ref.key] as string;
    else if (e.valueFrom)
      continue; // fieldRef and the like: the pod's, not the manifests'
    else
      env[e.name] = String(e.value ?? "").replace(/\$\$|\$\((\w+)\)/g, (whole, v?: string) =>
        v === undefined ? "$" : (env[v] ?? whole),
      );
  }
  return env;
}
