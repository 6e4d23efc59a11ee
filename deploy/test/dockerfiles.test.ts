import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { repoRoot } from "../src/env-reads.ts";
import { SERVICES } from "../src/nats-permissions.ts";

const dockerfile = (svc: string): string =>
  readFileSync(join(repoRoot, "services", svc, "Dockerfile"), "utf8");
const lines = (text: string): string[] =>
  text
    .replace(/\\\n/g, " ")
    .split("\n")
    .filter((l) => l.trim() && !l.trim().startsWith("#"));

describe("Dockerfiles", () => {
  test.each(SERVICES)("%s: multi-stage on node:24-slim, production dependencies only", (svc) => {
    const text = dockerfile(svc);
    const froms = lines(text).filter((l) => l.startsWith("FROM "));
    expect(froms.length).toBeGreaterThanOrEqual(2);
    for (const from of froms) expect(from).toMatch(/^FROM node:24-slim\b/);
    expect(text).toMatch(new RegExp(`npm ci --omit=dev .*-w @mikrom/${svc}\\b`));
  });

  test.each(SERVICES)("%s: runs its main.ts as a non-root user, with a health check", (svc) => {
    const final = lines(dockerfile(svc)).slice(
      lines(dockerfile(svc)).findLastIndex((l) => l.startsWith("FROM ")),
    );
    expect(final).toContain("USER node");
    // The gateway answers health on its API port; a worker on HEALTH_PORT, which the gateway ignores.
    const check = svc === "api-gateway" ? '"PORT", "/health"' : '"HEALTH_PORT", "/health/ready"';
    expect(final.find((l) => l.startsWith("HEALTHCHECK"))).toMatch(`CMD ["node", "probe.ts", ${check}]`);
    expect(final.at(-1)).toBe(`CMD ["node", "services/${svc}/src/main.ts"]`);
  });

  test.each(SERVICES)("%s: every path it copies from the repository exists", (svc) => {
    for (const line of lines(dockerfile(svc)).filter(
      (l) => l.startsWith("COPY ") && !l.includes("--from="),
    )) {
      const sources = line.replace(/--\S+/g, "").trim().split(/\s+/).slice(1, -1);
      for (const source of sources)
        expect(existsSync(join(repoRoot, source)), `${svc}: ${source}`).toBe(true);
    }
  });

  test("every workspace manifest is copied before npm ci, so the lockfile's workspaces all exist", () => {
    const root = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { workspaces: string[] };
    const lock = JSON.parse(readFileSync(join(repoRoot, "package-lock.json"), "utf8")) as {
      packages: Record<string, { link?: boolean }>;
    };
    const workspaces = Object.keys(lock.packages).filter((p) => p && !p.startsWith("node_modules/"));
    expect(workspaces.length).toBeGreaterThan(5);
    expect(root.workspaces).toContain("deploy");
    for (const svc of SERVICES) {
      for (const ws of workspaces) expect(dockerfile(svc)).toContain(`COPY ${ws}/package.json ${ws}/`);
    }
  });

  test("the provisioner's image has qemu and builds its guest", () => {
    const text = dockerfile("provisioner");
    expect(text).toMatch(/qemu-system-x86/);
    expect(text).toMatch(/busybox-static/);
    expect(text).toMatch(/guest\/build\.sh/);
  });
});
