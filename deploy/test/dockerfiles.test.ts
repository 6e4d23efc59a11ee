import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { NODE_FLAGS, PROCESS_ENV } from "../../scripts/system.ts";
import { healthUrl } from "../docker/probe.ts";
import { loadCompose } from "../src/compose.ts";
import { execForm, type Image, image, parseDockerfile, substitute } from "../src/dockerfile.ts";
import { repoRoot } from "../src/env-reads.ts";
import { SERVICES, type Service } from "../src/nats-permissions.ts";

const stages = parseDockerfile();
const compose = loadCompose();
const buildOf = (svc: Service) => compose.services[svc]!.build!;
/** The image compose builds for the service: the one Dockerfile, its build arguments and target. */
const imageOf = (svc: Service): Image =>
  image(stages, { target: buildOf(svc).target, args: buildOf(svc).args });
/** A RUN line as its shell runs it: the build arguments are in its environment. */
const asRun = (svc: Service, args: string): string => substitute(args, new Map([["SERVICE", svc]]));
/** The stages whose files end up in the image: its chain and those it copies --from. */
const stagesUsed = (img: Image): string[] => [
  ...img.chain.map((s) => s.name ?? ""),
  ...img.instructions.flatMap((i) => [...i.args.matchAll(/--from=(\S+)/g)].map((m) => m[1]!)),
];
/** The port and path each service answers health on (libs/runtime's server, the gateway's routes). */
const HEALTH: Record<Service, [variable: string, path: string]> = {
  "api-gateway": ["PORT", "/health"],
  "vm-service": ["HEALTH_PORT", "/health/ready"],
  "ippool-service": ["HEALTH_PORT", "/health/ready"],
  provisioner: ["HEALTH_PORT", "/health/ready"],
  audit: ["HEALTH_PORT", "/health/ready"],
};

describe("the Dockerfile", () => {
  test("is the only one: no service keeps a Dockerfile of its own", () => {
    const own = readdirSync(join(repoRoot, "services")).flatMap((svc) =>
      readdirSync(join(repoRoot, "services", svc))
        .filter((file) => /dockerfile/i.test(file))
        .map((file) => `services/${svc}/${file}`),
    );
    expect(own).toEqual([]);
    expect(existsSync(join(repoRoot, "Dockerfile"))).toBe(true);
  });

  test("every stage starts from node:24-slim or an earlier stage", () => {
    stages.forEach((stage, index) => {
      const earlier = stages.slice(0, index).map((s) => s.name);
      if (!earlier.includes(stage.base)) expect(stage.base, stage.name).toBe("node:24-slim");
    });
    expect(stages.length).toBeGreaterThanOrEqual(3);
  });

  test.each(SERVICES)("%s: multi-stage on node:24-slim, with its production dependencies only", (svc) => {
    const img = imageOf(svc);
    expect(img.chain[0]!.base).toBe("node:24-slim");
    expect(img.instructions.map((i) => i.args)).toContain("--from=deps /app/node_modules ./node_modules");
    const install = img.stage("deps").filter((i) => i.keyword === "RUN" && /\bnpm ci\b/.test(i.args));
    expect(install).toHaveLength(1);
    expect(asRun(svc, install[0]!.args)).toMatch(
      new RegExp(`npm ci --omit=dev --ignore-scripts .*-w @mikrom/${svc}$`),
    );
    const manifest = JSON.parse(readFileSync(join(repoRoot, "services", svc, "package.json"), "utf8"));
    expect(manifest.name).toBe(`@mikrom/${svc}`);
  });

  test.each(SERVICES)("%s: every workspace manifest is copied before npm ci", (svc) => {
    const lock = JSON.parse(readFileSync(join(repoRoot, "package-lock.json"), "utf8")) as {
      packages: Record<string, unknown>;
    };
    const workspaces = Object.keys(lock.packages).filter((p) => p && !p.startsWith("node_modules/"));
    expect(workspaces.length).toBeGreaterThan(5);
    const deps = imageOf(svc).stage("deps");
    const before = deps
      .slice(
        0,
        deps.findIndex((i) => i.keyword === "RUN" && /\bnpm ci\b/.test(i.args)),
      )
      .filter((i) => i.keyword === "COPY")
      .map((i) => i.args);
    expect(before).toContain("package.json package-lock.json ./");
    for (const ws of workspaces) expect(before).toContain(`${ws}/package.json ${ws}/`);
  });

  test.each(SERVICES)("%s: runs its main.ts as user node", (svc) => {
    const img = imageOf(svc);
    expect(img.last("USER")?.args).toBe("node");
    expect(img.last("WORKDIR")?.args).toBe("/app");
    // A shell reads the service's name from ENV at start; exec makes node the process signals reach.
    const [shell, flag, script] = execForm(img.last("CMD")!.args) ?? [];
    expect([shell, flag]).toEqual(["sh", "-c"]);
    // With the node flags every service gets under npm start too.
    expect(substitute(script ?? "", img.env)).toBe(
      `exec node ${NODE_FLAGS.join(" ")} "services/${svc}/src/main.ts"`,
    );
    for (const [name, value] of Object.entries(PROCESS_ENV)) expect(img.env.get(name)).toBe(value);
    expect(existsSync(join(repoRoot, "services", svc, "src", "main.ts"))).toBe(true);
    expect(img.instructions.filter((i) => i.keyword === "COPY").map((i) => i.args)).toContain(
      `services/${svc}/src ./services/${svc}/src`,
    );
  });

  test.each(SERVICES)("%s: health-checked by probe.ts on the port and path it answers on", (svc) => {
    const img = imageOf(svc);
    const check = img.last("HEALTHCHECK")!;
    expect(check.args).toMatch(/--interval=10s --timeout=3s --start-period=\d+s --retries=3/);
    const command = execForm(check.args);
    expect(command?.slice(0, 2)).toEqual(["node", "probe.ts"]);
    expect(command?.slice(2)).toEqual(HEALTH[svc]);
    expect(img.instructions.map((i) => i.args)).toContain("deploy/docker/probe.ts ./probe.ts");
    // With the environment compose gives the container, the probe asks the port the service serves.
    const env = compose.services[svc]!.environment as Record<string, string>;
    const port = svc === "api-gateway" ? env.PORT : env.HEALTH_PORT;
    expect(port).toMatch(/^\d+$/);
    expect(healthUrl(command!.slice(2), env)).toBe(`http://127.0.0.1:${port}${HEALTH[svc][1]}`);
  });

  test.each(SERVICES)("%s: exposes the API port only if it is the gateway", (svc) => {
    const exposed = imageOf(svc)
      .instructions.filter((i) => i.keyword === "EXPOSE")
      .map((i) => i.args);
    if (svc !== "api-gateway") return expect(exposed).toEqual([]);
    const env = compose.services[svc]!.environment as Record<string, string>;
    expect(exposed).toEqual([env.PORT]);
    expect(compose.services[svc]!.ports).toEqual([expect.stringMatching(new RegExp(`:${env.PORT}$`))]);
  });

  test.each(SERVICES)("%s: every path it copies from the repository exists", (svc) => {
    const img = imageOf(svc);
    const copies = [...new Set(stagesUsed(img))]
      .flatMap((name) => (name ? img.stage(name) : img.instructions))
      .filter((i) => i.keyword === "COPY" && !i.args.includes("--from="));
    expect(copies.length).toBeGreaterThan(15);
    for (const copy of copies) {
      const sources = copy.args.replace(/--\S+/g, "").trim().split(/\s+/).slice(0, -1);
      for (const source of sources)
        expect(existsSync(join(repoRoot, source)), `${svc}: ${source}`).toBe(true);
    }
  });

  test.each(SERVICES)("%s: qemu and the guest only in the provisioner's image", (svc) => {
    const img = imageOf(svc);
    const runs = img.instructions.filter((i) => i.keyword === "RUN").map((i) => i.args);
    if (svc !== "provisioner") {
      expect(runs.join("\n")).not.toMatch(/qemu|apt-get/);
      expect(stagesUsed(img)).not.toContain("guest");
      return;
    }
    const apt = runs.find((r) => r.includes("apt-get install"));
    for (const pkg of ["qemu-system-x86", "busybox-static", "lz4", "iproute2"]) expect(apt).toContain(pkg);
    expect(img.instructions.map((i) => i.args)).toContain(
      "--from=guest --chown=node:node /opt/mikrom/guest /opt/mikrom/guest",
    );
    expect(img.stage("guest").find((i) => i.keyword === "RUN" && i.args.includes("build.sh"))?.args).toBe(
      "MIKROM_GUEST_DIR=/opt/mikrom/guest bash /src/guest/build.sh",
    );
    const env = compose.services[svc]!.environment as Record<string, string>;
    expect(img.env.get("MIKROM_GUEST_DIR")).toBe(env.MIKROM_GUEST_DIR);
    expect(img.env.get("MIKROM_RUN_DIR")).toBe(env.MIKROM_RUN_DIR);
    // Root comes from compose and the DaemonSet (taps, /dev/kvm), not from the image.
    expect(compose.services[svc]!.user).toBe("0:0");
  });

  test.each(["api-gateway", "provisioner"] as const)(
    "the %s target refuses to build another service",
    (svc) => {
      const guard = image(stages, { target: svc, args: { SERVICE: "audit" } })
        .stage(svc)
        .find((i) => i.keyword === "RUN" && i.args.startsWith("test "));
      expect(asRun("audit", guard!.args)).toMatch(new RegExp(`^test "audit" = ${svc} \\|\\| .*exit 1; }$`));
    },
  );
});
