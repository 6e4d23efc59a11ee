/**
 * Writes the files derived from deploy/src: the NATS users and permissions (for compose and for
 * Kubernetes, whose kustomize cannot read files outside its folder) and the Grafana dashboard. Run it after
 * changing nats-permissions.ts: `node_modules/.bin/node deploy/src/generate.ts`; a test fails while
 * a generated file differs from what this would write.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { composeHosts } from "./compose.ts";
import { dashboard } from "./dashboard.ts";
import { renderAuthConf } from "./nats-permissions.ts";

export const GENERATED: ReadonlyArray<{ path: string; render: () => string }> = [
  // compose runs named hosts, each with a user of its own; Kubernetes' DaemonSet shares one.
  { path: "nats/auth.conf", render: () => renderAuthConf("mikrom", composeHosts()) },
  { path: "k8s/base/nats/auth.conf", render: () => renderAuthConf("mikrom") },
  { path: "grafana/dashboards/mikrom.json", render: () => `${JSON.stringify(dashboard(), null, 2)}\n` },
];

export const deployDir = join(import.meta.dirname, "..");

if (import.meta.main) {
  for (const file of GENERATED) {
    writeFileSync(join(deployDir, file.path), file.render());
    process.stdout.write(`wrote deploy/${file.path}\n`);
  }
}
