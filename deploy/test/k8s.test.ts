import { readFileSync } from "node:fs";
import { join } from "node:path";
import { BaseEnv, parseEnv } from "@mikrom/runtime";
import { describe, expect, test } from "vitest";
import { loadConfig as gatewayConfig } from "../../services/api-gateway/src/config.ts";
import { setupTargets } from "../../services/audit/src/setup-databases.ts";
import { loadCompose } from "../src/compose.ts";
import { type K8sObject, k8sDir, kustomizations, render, validateObject } from "../src/k8s.ts";
import {
  renderDbSetupHosts,
  renderHostWorkloads,
  renderNatsHostPasswords,
} from "../src/k8s-host-manifests.ts";
import { k8sHost, loadK8sHosts } from "../src/k8s-hosts.ts";
import {
  DATABASE_ROLE,
  HOST_SECRET_KEYS,
  hostSecret,
  OPERATOR_SECRETS,
  operatorSecrets,
  secretsNamed,
  WORKERS,
} from "../src/k8s-secrets.ts";
import { passwordVariable, renderAuthConf, SERVICES } from "../src/nats-permissions.ts";
import { containerEnv } from "./k8s-env.ts";

const rendered = new Map(kustomizations().map((dir) => [dir.slice(k8sDir.length + 1), render(dir)]));
const production = rendered.get("overlays/production")!;

// biome-ignore lint/suspicious/noExplicitAny: rendered manifests are walked as plain data
type Any = any;
const find = (objs: K8sObject[], kind: string, name: string): Any =>
  objs.find((o) => o.kind === kind && o.metadata.name === name);
const workers = WORKERS;
const hosts = loadK8sHosts();
/** Each host's DaemonSet, as rendered. */
const agents = (objs: K8sObject[]): Any[] => hosts.map((h) => find(objs, "DaemonSet", h.secret));

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
    const base = rendered.get("base")!;
    const pods = svc === "provisioner" ? agents(base) : [find(base, "Deployment", svc)];
    expect(pods.length).toBeGreaterThan(0);
    for (const workload of pods) {
      const [name] = String(workload.spec.template.spec.containers[0].image).split(":");
      expect(name).toBe(String(loadCompose().services[svc]!.image).split(":")[0]);
      expect(name).toBe(`mikrom/${svc}`);
    }
  });

  test("each host in k8s/hosts.yaml has an agent of its own: a DaemonSet on its node only, with /dev/kvm and the network privileges", () => {
    expect(hosts.map((h) => [h.node, h.id, h.secret])).toEqual([
      ["kvm-node-1", "kvm-node-1", "provisioner-kvm-node-1"],
      ["kvm-node-2", "kvm-node-2", "provisioner-kvm-node-2"],
    ]);
    const selectors = new Set<string>();
    for (const [host, ds] of hosts.map((h, i) => [h, agents(production)[i]] as const)) {
      const pod = ds.spec.template.spec;
      expect(
        pod.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms,
      ).toEqual([{ matchFields: [{ key: "metadata.name", operator: "In", values: [host.node] }] }]);
      expect(pod.nodeSelector).toBeUndefined();
      // Its selector is its own: two hosts' DaemonSets never claim each other's pods.
      expect(ds.spec.template.metadata.labels).toMatchObject(ds.spec.selector.matchLabels);
      expect(ds.spec.selector.matchLabels["mikrom.io/host"]).toBe(host.id);
      selectors.add(JSON.stringify(ds.spec.selector.matchLabels));
      expect(pod.hostNetwork).toBe(true);
      expect(pod.containers[0].securityContext.capabilities.add).toContain("NET_ADMIN");
      expect(pod.volumes.map((v: Any) => v.hostPath?.path)).toEqual(
        expect.arrayContaining(["/dev/kvm", "/dev/net/tun"]),
      );
      // The one Secret it reads is its host's.
      expect(secretsNamed([ds])).toEqual([host.secret]);
      expect(pod.containers[0].env).toContainEqual({ name: "MIKROM_HOST_ID", value: host.id });
    }
    expect(selectors.size).toBe(hosts.length);
    // No agent shared by every node is left, nor its credentials.
    expect(find(production, "DaemonSet", "provisioner")).toBeUndefined();
    expect(find(production, "Deployment", "provisioner")).toBeUndefined();
    expect(secretsNamed(production)).not.toContain("provisioner-secrets");
  });

  test("the hosts' manifests are rendered from any list: none, or one node named with dots", () => {
    expect(loadK8sHosts("nodes: []\n")).toEqual([]);
    expect(loadK8sHosts("# none yet\n")).toEqual([]);
    expect(renderHostWorkloads([])).toMatch(/kind: ServiceAccount/);
    expect(renderNatsHostPasswords([])).not.toMatch(/env/);
    expect(renderDbSetupHosts([])).toMatch(/name: HOST_DATABASE_URLS\n\s+value: ""/);
    expect(k8sHost("kvm-3.dc1.example.org")).toMatchObject({
      id: "kvm-3-dc1-example-org",
      secret: "provisioner-kvm-3-dc1-example-org",
      natsUser: "host-kvm-3-dc1-example-org",
      role: "mikrom_provisioner_kvm-3-dc1-example-org",
    });
    expect(() => k8sHost("KVM_1")).toThrow(/not a Kubernetes node name/);
    expect(() => k8sHost("a".repeat(64))).toThrow(/over 63 characters/);
    expect(() => loadK8sHosts("nodes: [a.b, a-b]\n")).toThrow(/host id a-b is listed twice/);
    expect(() => loadK8sHosts("hosts: [a]\n")).toThrow(/unknown key hosts/);
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
    expect(config.data["auth.conf"]).toBe(
      renderAuthConf(
        "mikrom",
        hosts.map((h) => h.id),
      ),
    );
    expect(find(production, "PodDisruptionBudget", "nats").spec.maxUnavailable).toBe(1);
  });

  test("the NATS servers get every password auth.conf reads: the services' from nats-passwords, each host's from its Secret", () => {
    const pod = find(production, "StatefulSet", "nats").spec.template.spec;
    const configName = pod.volumes.find((v: Any) => v.name === "config").configMap.name;
    const auth = find(production, "ConfigMap", configName).data["auth.conf"] as string;
    const read = [...auth.matchAll(/password: \$(\w+)/g)].map((m) => m[1]);
    const container = pod.containers[0];
    const fromSecrets = container.envFrom.flatMap((f: Any) =>
      Object.keys(OPERATOR_SECRETS.find((s) => s.name === f.secretRef.name)!.keys),
    );
    const fromHosts = container.env.filter((e: Any) => e.valueFrom?.secretKeyRef);
    expect([...fromSecrets, ...fromHosts.map((e: Any) => e.name)].sort()).toEqual(read.sort());
    expect(fromHosts).toEqual(
      hosts.map((h) => ({
        name: passwordVariable(h.natsUser),
        valueFrom: { secretKeyRef: { name: h.secret, key: "NATS_PASSWORD" } },
      })),
    );
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
    for (const workload of [
      ...workers.map((s) => find(production, "Deployment", s)),
      ...agents(production),
    ]) {
      const pod = workload.spec.template;
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
  const written = operatorSecrets({ adminEmail: "root@example.org", hosts });
  const secret = (name: string): Record<string, string> =>
    written.find((s) => s.metadata.name === name)!.stringData;

  test.each([...rendered.keys()])(
    "%s holds no Secret, and every Secret it names is one the operator creates",
    (dir) => {
      const objects = rendered.get(dir)!;
      expect(objects.filter((o) => o.kind === "Secret").map((o) => o.metadata.name)).toEqual([]);
      expect(new Set(secretsNamed(objects))).toEqual(
        new Set([...OPERATOR_SECRETS.map((s) => s.name), ...hosts.map((h) => h.secret)]),
      );
    },
  );

  test("deploy/README.md says how to create each of them, a host's too", () => {
    const readme = readFileSync(join(k8sDir, "..", "README.md"), "utf8");
    expect(readme).toContain("node_modules/.bin/node deploy/src/k8s-secrets.ts");
    expect(readme).toContain("deploy/src/k8s-secrets.ts --host");
    for (const secret of OPERATOR_SECRETS) {
      expect(readme, secret.name).toContain(`\`${secret.name}\``);
      for (const key of Object.keys(secret.keys)) expect(readme, `${secret.name}.${key}`).toContain(key);
    }
    expect(readme).toContain("`provisioner-<host id>`");
    for (const key of Object.keys(HOST_SECRET_KEYS)) expect(readme, key).toContain(`\`${key}\``);
  });

  test("k8s-secrets.ts writes them with fresh values that pass the API schema and the services' own checks", () => {
    const again = operatorSecrets({ adminEmail: "root@example.org", hosts });
    expect(written.map((s) => s.metadata.name)).toEqual([
      ...OPERATOR_SECRETS.map((s) => s.name),
      ...hosts.map((h) => h.secret),
    ]);
    expect(written.flatMap((s) => validateObject(s as unknown as K8sObject))).toEqual([]);
    expect(secret("api-gateway-secrets").JWT_SECRET).not.toBe(
      again.find((s) => s.metadata.name === "api-gateway-secrets")!.stringData.JWT_SECRET,
    );
    for (const s of written) {
      expect(s.metadata.namespace).toBe("mikrom");
      const declared = OPERATOR_SECRETS.find((o) => o.name === s.metadata.name)?.keys ?? HOST_SECRET_KEYS;
      expect(Object.keys(s.stringData).sort()).toEqual(Object.keys(declared).sort());
    }
    // nats-server reads a password from its environment as configuration: a letter first keeps it text.
    const natsPasswords = [
      ...Object.values(secret("nats-passwords")),
      ...hosts.map((h) => secret(h.secret).NATS_PASSWORD!),
    ];
    for (const p of natsPasswords) expect(p).toMatch(/^[A-Za-z][\w-]{31,}$/);
    // A host added later gets its Secret alone, with passwords of its own.
    const added = hostSecret(hosts[0]!);
    expect(added.metadata.name).toBe(hosts[0]!.secret);
    expect(added.stringData.NATS_PASSWORD).not.toBe(secret(hosts[0]!.secret).NATS_PASSWORD);

    // The gateway starts in production with its Secret and its ConfigMaps, as its pod would.
    const gatewayEnv = containerEnv(production, written, "Deployment", "api-gateway");
    expect(gatewayEnv.NODE_ENV).toBe("production");
    expect(gatewayConfig(gatewayEnv).admin?.email).toBe("root@example.org");

    // Each NATS_URL carries the password the NATS server has for that user.
    const natsEnv = containerEnv(production, written, "StatefulSet", "nats");
    const workloads: Array<[string, string, string]> = [
      ...workers.map((s): [string, string, string] => ["Deployment", s, s]),
      ...hosts.map((h): [string, string, string] => ["DaemonSet", h.secret, h.natsUser]),
    ];
    for (const [kind, name, user] of workloads) {
      const env = containerEnv(production, written, kind, name);
      expect(() => parseEnv(name, BaseEnv, env), name).not.toThrow();
      const nats = new URL(env.NATS_URL!);
      expect([nats.username, nats.password]).toEqual([user, natsEnv[passwordVariable(user as never)]]);
    }
  });
});

describe("PostgreSQL: a role per service and per host, none of them the owner", () => {
  const written = operatorSecrets({ adminEmail: "root@example.org", hosts });
  const secret = (name: string): Record<string, string> =>
    written.find((s) => s.metadata.name === name)!.stringData;
  const owner = secret("mikrom-db-owner");
  const workloads: Array<[string, string, string]> = [
    ...workers.map((s): [string, string, string] => ["Deployment", s, DATABASE_ROLE[s]]),
    ...hosts.map((h): [string, string, string] => ["DaemonSet", h.secret, h.role]),
  ];

  test.each(workloads)(
    "%s %s connects as its own role (%s) to every database it names, never as the owner",
    (kind, name, role) => {
      const env = containerEnv(production, written, kind, name);
      const urls = Object.entries(env).filter(([k, v]) => k.endsWith("DATABASE_URL") && v);
      expect(urls.map(([k]) => k)).toContain("DATABASE_URL");
      expect(urls.length).toBe(2);
      for (const [key, value] of urls) {
        const url = new URL(value);
        expect(url.username, `${name} ${key}`).toBe(role);
        expect(url.username).not.toBe(owner.username);
        expect(url.password).not.toBe(owner.password);
        expect(url.password).toBe(new URL(env.DATABASE_URL!).password);
      }
    },
  );

  test("every service's and every host's role and password are its own", () => {
    const urls = workloads.map(
      ([kind, name]) => new URL(containerEnv(production, written, kind, name).DATABASE_URL!),
    );
    expect(new Set(urls.map((u) => u.username)).size).toBe(workloads.length);
    expect(new Set(urls.map((u) => u.password)).size).toBe(workloads.length);
    for (const host of hosts) {
      const env = containerEnv(production, written, "DaemonSet", host.secret);
      expect(new URL(env.PROVISIONER_DATABASE_URL!).password).toBe(secret(host.secret).POSTGRES_PASSWORD);
      expect(new URL(env.PROVISIONER_DATABASE_URL!).pathname).toBe(`/${host.role}`);
    }
  });

  test("the setup Job makes those roles, with the owner as its admin, each host's from its Secret", () => {
    const job = find(production, "Job", "mikrom-db-setup");
    const pod = job.spec.template;
    expect(pod.metadata.labels["mikrom.io/db-client"]).toBe("true");
    expect(pod.spec.securityContext.runAsNonRoot).toBe(true);
    const env = containerEnv(production, written, "Job", "mikrom-db-setup");
    // Every reference was set before it was used: Kubernetes would leave it as written.
    expect(Object.values(env).join(" ")).not.toMatch(/\$\(/);
    const { adminUrl, targets } = setupTargets(env);
    const admin = new URL(adminUrl);
    expect([admin.username, admin.password]).toEqual([owner.username, owner.password]);
    // The roles and passwords it sets are those the services and the agents connect with.
    const own = (kind: string, name: string) => {
      const env = containerEnv(production, written, kind, name);
      const key = Object.keys(env).find((k) => k !== "DATABASE_URL" && k.endsWith("DATABASE_URL"))!;
      const url = new URL(env[key]!);
      return { role: url.username, password: url.password, database: url.pathname.slice(1) };
    };
    expect(targets).toEqual([
      ...workers.filter((s) => s !== "audit").map((s) => own("Deployment", s)),
      ...hosts.map((h) => own("DaemonSet", h.secret)),
      // audit's database is owned by a role of its own; audit's role gets INSERT and SELECT only.
      {
        ...own("Deployment", "audit"),
        owner: expect.objectContaining({ role: "mikrom_audit_owner", tables: ["SELECT", "INSERT"] }),
      },
    ]);
    expect(targets.slice(3, 3 + hosts.length).map((t) => t.role)).toEqual(hosts.map((h) => h.role));
    const initSql = find(production, "Cluster", "mikrom-db").spec.bootstrap.initdb.postInitSQL.join("\n");
    expect(initSql).not.toMatch(/SUPERUSER/i);
  });
});
