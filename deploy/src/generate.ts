/**
 * Writes the files derived from deploy/src: the NATS users and permissions (for compose and for
 * Kubernetes, whose kustomize cannot read files outside its folder), the Kubernetes manifests of each
 * host in deploy/k8s/hosts.yaml, and the Grafana dashboard. Run it after changing nats-permissions.ts
 * or the hosts: `node_modules/.bin/node deploy/src/generate.ts`; a test fails while a generated file
 * differs from what this would write.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { composeHosts } from "./compose.ts";
import { dashboard } from "./dashboard.ts";
import { renderDbSetupHosts, renderHostWorkloads, renderNatsHostPasswords } from "./k8s-host-manifests.ts";
import { loadK8sHosts } from "./k8s-hosts.ts";
import { renderAuthConf } from "./nats-permissions.ts";

export const GENERATED: ReadonlyArray<{ path: string; render: () => string }> = [
  // Each deployment's hosts have a NATS user each: compose's services, Kubernetes' hosts.yaml.
  { path: "nats/auth.conf", render: () => renderAuthConf("mikrom", composeHosts()) },
  {
    path: "k8s/base/nats/auth.conf",
    render: () =>
      renderAuthConf(
        "mikrom",
        loadK8sHosts().map((h) => h.id),
      ),
  },
  { path: "k8s/base/hosts/provisioners.yaml", render: () => renderHostWorkloads(loadK8sHosts()) },
  { path: "k8s/base/hosts/nats.yaml", render: () => renderNatsHostPasswords(loadK8sHosts()) },
  { path: "k8s/base/hosts/db-setup.yaml", render: () => renderDbSetupHosts(loadK8sHosts()) },
  { path: "grafana/dashboards/mikrom.json", render: () => `${JSON.stringify(dashboard(), null, 2)}\n` },
];

export const deployDir = join(import.meta.dirname, "..");

if (import.meta.main) {
  for (const file of GENERATED) {
    mkdirSync(dirname(join(deployDir, file.path)), { recursive: true });
    writeFileSync(join(deployDir, file.path), file.render());
    process.stdout.write(`wrote deploy/${file.path}\n`);
  }
}
