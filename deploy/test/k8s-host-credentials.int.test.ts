/**
 * The Kubernetes hosts' NATS identities end to end, on a real nats-server this test starts: the
 * auth.conf the production overlay renders, the passwords its NATS StatefulSet reads from the
 * operator's Secrets (k8s-secrets.ts), and each host's agent connecting with the NATS_URL its own
 * DaemonSet builds from its own Secret. One host's credentials reach its own subjects only.
 */
import { connectNats } from "@mikrom/bus";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { k8sDir, render } from "../src/k8s.ts";
import { type K8sHost, loadK8sHosts } from "../src/k8s-hosts.ts";
import { operatorSecrets } from "../src/k8s-secrets.ts";
import { containerEnv } from "./k8s-env.ts";
import {
  type PermissionProbe,
  permissionProbe,
  startNatsServer,
  type TestNatsServer,
} from "./nats-server.ts";

const production = render(`${k8sDir}/overlays/production`);
const secrets = operatorSecrets({ adminEmail: "root@example.org", hosts: loadK8sHosts() });
const [a, b] = loadK8sHosts() as [K8sHost, K8sHost];
// biome-ignore lint/suspicious/noExplicitAny: rendered manifests are walked as plain data
type Any = any;
let server: TestNatsServer | undefined;
/** The refusals below are expected: not logged. */
const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const agents = new Map<string, { nc: NatsConnection; probe: PermissionProbe }>();

/** The host's NATS_URL as its DaemonSet sets it, pointed at this test's server. */
function agentUrl(secret: string): URL {
  const url = new URL(containerEnv(production, secrets, "DaemonSet", secret).NATS_URL!);
  url.host = `127.0.0.1:${server!.port}`;
  return url;
}

beforeAll(async () => {
  expect(b, "deploy/k8s/hosts.yaml lists two hosts or more").toBeDefined();
  const nats = production.find((o) => o.kind === "StatefulSet" && o.metadata.name === "nats") as Any;
  const configMap = nats.spec.template.spec.volumes.find((v: Any) => v.name === "config").configMap.name;
  const config = production.find((o) => o.kind === "ConfigMap" && o.metadata.name === configMap) as Any;
  const env = containerEnv(production, secrets, "StatefulSet", "nats");
  const gateway = new URL(containerEnv(production, secrets, "Deployment", "api-gateway").NATS_URL!);
  server = await startNatsServer(config.data["auth.conf"], env, {
    user: gateway.username,
    pass: gateway.password,
  });
  for (const host of [a, b]) {
    // The agent's own way in: libs/bus reads the user and password from the URL.
    const nc = await connectNats({ servers: agentUrl(host.secret).toString(), name: host.id, logger: quiet });
    agents.set(host.id, { nc, probe: permissionProbe(nc) });
  }
});

afterAll(async () => {
  for (const { nc } of agents.values()) await nc.close();
  server?.stop();
});

describe("Kubernetes: each host's agent has a NATS identity of its own", () => {
  test("each agent works on its own host's subjects", async () => {
    for (const host of [a, b]) {
      const { probe } = agents.get(host.id)!;
      expect(await probe.canSubscribe(`mikrom.qry.provisioner.${host.id}.console`)).toBe(true);
      expect(await probe.canPublish(`mikrom.evt.host.${host.id}.HostRegistered`)).toBe(true);
      expect(await probe.canPublish(`mikrom.beat.${host.id}`)).toBe(true);
      expect(await probe.canPublish(`mikrom.evt.provisioner.${host.id}.VmBooted`)).toBe(true);
      expect(await probe.canPublish(`$JS.API.CONSUMER.MSG.NEXT.MIKROM_COMMANDS.provisioner-${host.id}`)).toBe(
        true,
      );
      expect(probe.violations).toEqual([]);
    }
  });

  test("host A's credentials are refused on host B's subjects, and the other way round", async () => {
    for (const [self, other] of [
      [a, b],
      [b, a],
    ] as const) {
      const { probe } = agents.get(self.id)!;
      expect(await probe.canSubscribe(`mikrom.cmd.provisioner.${other.id}.*`)).toBe(false);
      expect(await probe.canSubscribe(`mikrom.qry.provisioner.${other.id}.console`)).toBe(false);
      expect(await probe.canPublish(`mikrom.evt.provisioner.${other.id}.VmBooted`)).toBe(false);
      expect(await probe.canPublish(`mikrom.evt.host.${other.id}.HostRegistered`)).toBe(false);
      expect(await probe.canPublish(`mikrom.beat.${other.id}`)).toBe(false);
      expect(
        await probe.canPublish(`$JS.API.CONSUMER.MSG.NEXT.MIKROM_COMMANDS.provisioner-${other.id}`),
      ).toBe(false);
      expect(await probe.canPublish(`$JS.ACK.MIKROM_COMMANDS.provisioner-${other.id}.1.1.1.1.1`)).toBe(false);
    }
  });

  test("one host's password logs in as no other host, nor as the agent every node once shared", async () => {
    const servers = `127.0.0.1:${server!.port}`;
    const aPassword = agentUrl(a.secret).password;
    await expect(connect({ servers, user: b.natsUser, pass: aPassword, timeout: 2_000 })).rejects.toThrow(
      /Authorization/,
    );
    await expect(connect({ servers, user: "provisioner", pass: aPassword, timeout: 2_000 })).rejects.toThrow(
      /Authorization/,
    );
  });
});
