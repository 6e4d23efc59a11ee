import { describe, expect, test } from "vitest";
import { loadCompose } from "../src/compose.ts";
import { composedInputs, envProblems } from "../src/env-policy.ts";
import { envReads, readsOfSource } from "../src/env-reads.ts";
import { type K8sObject, k8sDir, render } from "../src/k8s.ts";
import { loadK8sHosts } from "../src/k8s-hosts.ts";
import { OPERATOR_SECRETS } from "../src/k8s-secrets.ts";
import { SERVICES, type Service } from "../src/nats-permissions.ts";

// biome-ignore lint/suspicious/noExplicitAny: rendered manifests are walked as plain data
type Any = any;
const manifests = render(`${k8sDir}/overlays/production`);
const compose = loadCompose();

/**
 * Every variable the container of `workload` gets: `env` entries and the keys of its envFrom sources,
 * but for those it only builds others from (composedInputs) and does not read itself.
 */
function k8sEnv(
  objects: K8sObject[],
  kind: string,
  workload: string,
  reads: ReadonlySet<string>,
): Set<string> {
  const object = objects.find((o) => o.kind === kind && o.metadata.name === workload) as Any;
  const container = object.spec.template.spec.containers[0];
  const inputs = composedInputs(container.env ?? []);
  const names = new Set<string>(
    (container.env ?? []).map((e: Any) => e.name).filter((n: string) => reads.has(n) || !inputs.has(n)),
  );
  for (const source of container.envFrom ?? []) {
    const ref = source.configMapRef ?? source.secretRef;
    const kind = source.configMapRef ? "ConfigMap" : "Secret";
    const obj = objects.find((o) => o.kind === kind && o.metadata.name === ref.name) as Any;
    // Secrets are the operator's (none ships): their keys are the ones k8s-secrets.ts declares.
    const keys = obj
      ? Object.keys({ ...obj.data, ...obj.stringData })
      : Object.keys(OPERATOR_SECRETS.find((s) => kind === "Secret" && s.name === ref.name)?.keys ?? {});
    if (!keys.length)
      throw new Error(`${workload}: envFrom names ${kind} ${ref.name}, which nothing provides`);
    for (const key of keys) names.add(key);
  }
  return names;
}

/** The workloads running `service`: its Deployment, or each host's DaemonSet for the provisioner. */
const workloads = (service: Service): Array<[string, string]> =>
  service === "provisioner" ? loadK8sHosts().map((h) => ["DaemonSet", h.secret]) : [["Deployment", service]];

describe("environment variables: what the services read is what the deployments set", () => {
  test.each(SERVICES)("%s: compose sets every variable it reads and nothing else", (service) => {
    const set = new Set(Object.keys(compose.services[service]?.environment ?? {}));
    expect(envProblems(envReads(service), set)).toEqual([]);
  });

  test.each(SERVICES.flatMap((s) => workloads(s).map(([kind, name]) => [s, kind, name] as const)))(
    "%s: the Kubernetes manifests (%s %s) set every variable it reads and nothing else",
    (service, kind, name) => {
      const reads = envReads(service);
      expect(envProblems(reads, k8sEnv(manifests, kind, name, reads))).toEqual([]);
    },
  );

  test("a variable set only to build another from is the manifest's input, not the service's", () => {
    const env = [
      { name: "PASSWORD", valueFrom: {} },
      { name: "URL", value: "nats://u:$(PASSWORD)@nats:4222" },
      { name: "LITERAL", value: "x" },
      { name: "ESCAPED", value: "$$(LITERAL)" },
    ];
    expect(composedInputs(env)).toEqual(new Set(["PASSWORD"]));
  });

  test("the reads are found in schemas, env accesses and the drivers' pick()", () => {
    const source = `
      const Env = BaseEnv.extend({ PORT: z.number(), nested: z.object({ NOT_A_VAR: z.string() }) });
      const a = process.env.LOG_LEVEL ?? env.OTEL_X ?? env["QUOTED"] ?? pick("MIKROM_DRIVER");
      const b = c.env.incoming; const d = other.UPPER;`;
    expect([...readsOfSource(source)].sort()).toEqual([
      "LOG_LEVEL",
      "MIKROM_DRIVER",
      "OTEL_X",
      "PORT",
      "QUOTED",
    ]);
  });

  test("every service reads the shared variables, and a new one in a config.ts would be noticed", () => {
    for (const service of SERVICES) {
      expect([...envReads(service)]).toEqual(
        expect.arrayContaining(["NATS_URL", "DATABASE_URL", "MIKROM_NAMESPACE", "LOG_LEVEL", "LOG_FORMAT"]),
      );
    }
    const reads = new Set([...envReads("audit"), "AUDIT_NEW_KNOB"]);
    const set = new Set(Object.keys(compose.services.audit?.environment ?? {}));
    expect(envProblems(reads, set)).toEqual(["AUDIT_NEW_KNOB is read but not set"]);
    expect(envProblems(envReads("audit"), new Set([...set, "STALE", "OTEL_MADE_UP", "HOME"]))).toEqual([
      "HOME is the platform's, not the deployment's",
      "OTEL_MADE_UP is set but nothing reads it",
      "STALE is set but the service does not read it",
    ]);
  });
});
