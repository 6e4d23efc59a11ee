import { readFileSync } from "node:fs";
import { join } from "node:path";
import { BaseEnv, parseEnv } from "@mikrom/runtime";
import { describe, expect, test } from "vitest";
import { loadConfig as gatewayConfig } from "../../services/api-gateway/src/config.ts";
import { setupTargets } from "../../services/audit/src/setup-databases.ts";
import { loadCompose } from "../src/compose.ts";
import { type K8sObject, k8sDir, kustomizations, render, validateObject } from "../src/k8s.ts";
import {
  DATABASE_ROLE,
  OPERATOR_SECRETS,
  operatorSecrets,
  type SecretObject,
  secretsNamed,
} from "../src/k8s-secrets.ts";
import { passwordVariable, renderAuthConf, SERVICES } from "../src/nats-permissions.ts";

const rendered = new Map(kustomizations().map((dir) => [dir.slice(k8sDir.length + 1), render(dir)]));
const production = rendered.get("overlays/production")!;

// biome-ignore lint/suspicious/noExplicitAny: rendered manifests are walked as plain data
type Any = any;
const find = (objs: K8sObject[], kind: string, name: string): Any =>
  objs.find((o) => o.kind === kind && o.metadata.name === name);
const workers = SERVICES.filter((s) => s !== "provisioner");

describe("Kubernetes manifests", () => {
  test.each([...rendered.keys()])("every object rendered from %s passes its API schema", (dir) => {
    const objects = rendered.get(dir)!;
    expect(objects.length).toBeGreaterThan(30);
    expect(objects.flatMap(validateObject)).toEqual([]);
  });

  test("the validators refuse what the API server would refuse", () => {
    const deployment = structuredClone(find(production, "Deployment", "vm-service"));
    deployment.spec.replicas = "two";
    expect(validateObject(deployment).join()).toMatch(/replicas must be integer/);
    const cluster = structuredClone(find(production, "Cluster", "mikrom-db"));
    cluster.spec.instaces = 3;
    expect(validateObject(cluster).join()).toMatch(/additional properties/);
    expect(validateObject({ apiVersion: "example.com/v1", kind: "Thing", metadata: { name: "x" } })).toEqual([
      "Thing/x: no schema for example.com/v1/Thing (neither a Kubernetes kind nor a known CRD)",
    ]);
  });

  test("everything lands in the mikrom namespace", () => {
    const namespaced = production.filter((o) => o.kind !== "Namespace");
    expect(namespaced.filter((o) => o.metadata.namespace !== "mikrom").map((o) => o.kind)).toEqual([]);
  });

  test.each(workers)(
    "%s is a Deployment with probes, resources, a disruption budget and an autoscaler",
    (svc) => {
      const d = find(production, "Deployment", svc);
      const c = d.spec.template.spec.containers[0];
      expect(c.readinessProbe).toBeDefined();
      expect(c.startupProbe).toBeDefined();
      expect(c.resources.requests.cpu).toBeDefined();
      expect(c.resources.limits.memory).toBeDefined();
      expect(d.spec.template.spec.securityContext.runAsNonRoot).toBe(true);
      const pdb = find(production, "PodDisruptionBudget", svc);
      expect(pdb.spec.selector.matchLabels).toEqual(d.spec.selector.matchLabels);
      const hpa = find(production, "HorizontalPodAutoscaler", svc);
      expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: "apps/v1", kind: "Deployment", name: svc });
      expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(2);
    },
  );

  test.each(SERVICES)("%s runs the image compose builds for it from the Dockerfile", (svc) => {
    const workload = find(rendered.get("base")!, svc === "provisioner" ? "DaemonSet" : "Deployment", svc);
    const [name] = String(workload.spec.template.spec.containers[0].image).split(":");
    expect(name).toBe(String(loadCompose().services[svc]!.image).split(":")[0]);
    expect(name).toBe(`mikrom/${svc}`);
  });

  test("the provisioner is a DaemonSet on KVM nodes with /dev/kvm and the network privileges", () => {
    const ds = find(production, "DaemonSet", "provisioner");
    const pod = ds.spec.template.spec;
    expect(pod.nodeSelector).toEqual({ "mikrom.io/kvm": "true" });
    expect(pod.hostNetwork).toBe(true);
    expect(pod.containers[0].securityContext.capabilities.add).toContain("NET_ADMIN");
    expect(pod.volumes.map((v: Any) => v.hostPath?.path)).toEqual(
      expect.arrayContaining(["/dev/kvm", "/dev/net/tun"]),
    );
    expect(find(production, "Deployment", "provisioner")).toBeUndefined();
  });

  test("NATS is a JetStream cluster of three with storage, fsync always, and the generated users", () => {
    const sts = find(production, "StatefulSet", "nats");
    expect(sts.spec.replicas).toBe(3);
    expect(sts.spec.volumeClaimTemplates[0].spec.resources.requests.storage).toBeDefined();
    const configName = sts.spec.template.spec.volumes.find((v: Any) => v.name === "config").configMap.name;
    const config = find(production, "ConfigMap", configName);
    expect(config.data["nats.conf"]).toMatch(/^\s*sync_interval: always$/m);
    expect(config.data["nats.conf"]).toMatch(/include \.\/auth\.conf/);
    expect(config.data["nats.conf"].match(/nats:\/\/nats-\d\.nats-headless:6222/g)).toHaveLength(3);
    expect(config.data["auth.conf"]).toBe(renderAuthConf("mikrom"));
    expect(find(production, "PodDisruptionBudget", "nats").spec.maxUnavailable).toBe(1);
  });

  test("PostgreSQL is a CloudNativePG cluster with a synchronous standby, bootstrapped by the operator's secret", () => {
    const db = find(production, "Cluster", "mikrom-db");
    expect(db.spec.instances).toBe(3);
    expect(db.spec.minSyncReplicas).toBe(1);
    const owner = OPERATOR_SECRETS.find((s) => s.name === db.spec.bootstrap.initdb.secret.name);
    expect(owner?.type).toBe("kubernetes.io/basic-auth");
  });

  test("network policies deny ingress by default and open NATS, PostgreSQL and the gateway to their clients only", () => {
    const policies = production.filter((o) => o.kind === "NetworkPolicy") as Any[];
    const deny = policies.find((p) => p.metadata.name === "default-deny-ingress");
    expect(deny.spec).toEqual({ podSelector: {}, policyTypes: ["Ingress"] });
    const clients = (name: string): Any =>
      policies.find((p) => p.metadata.name === name).spec.ingress[0].from[0];
    expect(clients("nats").podSelector.matchLabels).toEqual({ "mikrom.io/nats-client": "true" });
    expect(clients("postgres").podSelector.matchLabels).toEqual({ "mikrom.io/db-client": "true" });
    // The gateway trusts X-Forwarded-For from private addresses: only the ingress controller reaches it.
    expect(clients("api-gateway")).toEqual({
      namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "ingress-nginx" } },
    });
    expect(policies.find((p) => p.metadata.name === "api-gateway").spec.ingress).toHaveLength(1);
    for (const svc of SERVICES) {
      const pod = (find(production, "Deployment", svc) ?? find(production, "DaemonSet", svc)).spec.template;
      expect(pod.metadata.labels).toMatchObject({
        "mikrom.io/nats-client": "true",
        "mikrom.io/db-client": "true",
      });
    }
  });

  test("the collector runs on every node with its config", () => {
    expect(find(production, "DaemonSet", "otel-collector")).toBeDefined();
  });
});

describe("secrets: none ships; the operator creates them", () => {
  test.each([...rendered.keys()])(
    "%s holds no Secret, and every Secret it names is one the operator creates",
    (dir) => {
      const objects = rendered.get(dir)!;
      expect(objects.filter((o) => o.kind === "Secret").map((o) => o.metadata.name)).toEqual([]);
      expect(new Set(secretsNamed(objects))).toEqual(new Set(OPERATOR_SECRETS.map((s) => s.name)));
    },
  );

  test("deploy/README.md says how to create each of them", () => {
    const readme = readFileSync(join(k8sDir, "..", "README.md"), "utf8");
    expect(readme).toContain("node_modules/.bin/node deploy/src/k8s-secrets.ts");
    for (const secret of OPERATOR_SECRETS) {
      expect(readme, secret.name).toContain(`\`${secret.name}\``);
      for (const key of Object.keys(secret.keys)) expect(readme, `${secret.name}.${key}`).toContain(key);
    }
  });

  test("k8s-secrets.ts writes them with fresh values that pass the API schema and the services' own checks", () => {
    const written = operatorSecrets({ adminEmail: "root@example.org" });
    const again = operatorSecrets({ adminEmail: "root@example.org" });
    expect(written.map((s) => s.metadata.name)).toEqual(OPERATOR_SECRETS.map((s) => s.name));
    expect(written.flatMap((s) => validateObject(s as unknown as K8sObject))).toEqual([]);
    const data = (name: string): Record<string, string> =>
      written.find((s) => s.metadata.name === name)!.stringData;
    expect(data("api-gateway-secrets").JWT_SECRET).not.toBe(
      again.find((s) => s.metadata.name === "api-gateway-secrets")!.stringData.JWT_SECRET,
    );
    for (const secret of written) {
      expect(secret.metadata.namespace).toBe("mikrom");
      expect(Object.keys(secret.stringData).sort()).toEqual(
        Object.keys(OPERATOR_SECRETS.find((s) => s.name === secret.metadata.name)!.keys).sort(),
      );
    }

    // The gateway starts in production with its Secret and its ConfigMaps, as its pod would.
    const configMap = (name: string): Record<string, string> => find(production, "ConfigMap", name).data;
    const gatewayEnv = {
      ...configMap("mikrom-common"),
      ...configMap("api-gateway-config"),
      ...data("api-gateway-secrets"),
    };
    expect(gatewayEnv.NODE_ENV).toBe("production");
    expect(gatewayConfig(gatewayEnv).admin?.email).toBe("root@example.org");

    for (const service of SERVICES) {
      const env = data(`${service}-secrets`);
      expect(() => parseEnv(service, BaseEnv, env), service).not.toThrow();
      // Each NATS_URL carries the password the NATS server has for that user.
      const nats = new URL(env.NATS_URL!);
      expect([nats.username, nats.password]).toEqual([
        service,
        data("nats-passwords")[passwordVariable(service)],
      ]);
    }
  });
});

describe("PostgreSQL: a role per service, none of them the owner", () => {
  const written = operatorSecrets({ adminEmail: "root@example.org" });
  const secret = (name: string): Record<string, string> =>
    (written.find((s) => s.metadata.name === name) as SecretObject).stringData;
  /** What a container of the production overlay gets: its env, with $(VAR) as Kubernetes expands it. */
  function containerEnv(kind: string, name: string): Record<string, string> {
    const container = find(production, kind, name).spec.template.spec.containers[0];
    const env: Record<string, string> = {};
    for (const from of container.envFrom ?? []) {
      if (from.secretRef) Object.assign(env, secret(from.secretRef.name));
      else Object.assign(env, find(production, "ConfigMap", from.configMapRef.name).data);
    }
    for (const e of container.env ?? []) {
      const ref = e.valueFrom?.secretKeyRef;
      env[e.name] = ref
        ? (secret(ref.name)[ref.key] as string)
        : String(e.value).replace(/\$\((\w+)\)/g, (_, v: string) => env[v] ?? "");
    }
    return env;
  }
  const owner = secret("mikrom-db-owner");

  test.each(SERVICES)(
    "%s connects as its own role to every database it names, never as the owner",
    (service) => {
      const env = containerEnv(service === "provisioner" ? "DaemonSet" : "Deployment", service);
      const urls = Object.entries(env).filter(([k, v]) => k.endsWith("DATABASE_URL") && v);
      expect(urls.map(([k]) => k)).toContain("DATABASE_URL");
      for (const [key, value] of urls) {
        const url = new URL(value);
        expect(url.username, `${service} ${key}`).toBe(DATABASE_ROLE[service]);
        expect(url.username).not.toBe(owner.username);
        expect(url.password).not.toBe(owner.password);
        expect(url.password).toBe(new URL(env.DATABASE_URL!).password);
      }
    },
  );

  test("every service's role and password are its own", () => {
    const roles = SERVICES.map((s) => new URL(secret(`${s}-secrets`).DATABASE_URL!));
    expect(new Set(roles.map((u) => u.username)).size).toBe(SERVICES.length);
    expect(new Set(roles.map((u) => u.password)).size).toBe(SERVICES.length);
  });

  test("the setup Job makes those roles, with the owner as its admin, for the listed hosts", () => {
    const job = find(production, "Job", "mikrom-db-setup");
    const pod = job.spec.template;
    expect(pod.metadata.labels["mikrom.io/db-client"]).toBe("true");
    expect(pod.spec.securityContext.runAsNonRoot).toBe(true);
    const env = { ...containerEnv("Job", "mikrom-db-setup"), PROVISIONER_HOSTS: "node-1 node-2" };
    const { adminUrl, targets } = setupTargets(env);
    const admin = new URL(adminUrl);
    expect([admin.username, admin.password]).toEqual([owner.username, owner.password]);
    // The roles and passwords it sets are those the services connect with.
    const own = (service: (typeof SERVICES)[number]) => {
      const env = secret(`${service}-secrets`);
      const key = Object.keys(env).find((k) => k !== "DATABASE_URL" && k.endsWith("DATABASE_URL"));
      const url = new URL(key ? env[key]! : env.DATABASE_URL!);
      return { role: url.username, password: url.password };
    };
    expect(targets).toEqual([
      ...SERVICES.filter((s) => s !== "provisioner" && s !== "audit").map((s) => ({
        ...own(s),
        database: DATABASE_ROLE[s],
      })),
      // Each host its own role, named as its database (the agents share one Secret: one password).
      ...["node-1", "node-2"].map((host) => ({
        ...own("provisioner"),
        role: `mikrom_provisioner_${host}`,
        database: `mikrom_provisioner_${host}`,
      })),
      // audit's database is owned by a role of its own; audit's role gets INSERT and SELECT only.
      {
        ...own("audit"),
        database: "mikrom_audit",
        owner: expect.objectContaining({ role: "mikrom_audit_owner", tables: ["SELECT", "INSERT"] }),
      },
    ]);
    const initSql = find(production, "Cluster", "mikrom-db").spec.bootstrap.initdb.postInitSQL.join("\n");
    expect(initSql).not.toMatch(/SUPERUSER/i);
  });
});
