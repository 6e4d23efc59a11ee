// biome-ignore-all lint/suspicious/noTemplateCurlyInString: compose's ${VAR} syntax, written as compose reads it
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BaseEnv, parseEnv } from "@mikrom/runtime";
import { describe, expect, test } from "vitest";
import { loadConfig as gatewayConfig } from "../../services/api-gateway/src/config.ts";
import { setupTargets } from "../../services/audit/src/setup-databases.ts";
import { type ComposeService, interpolate, loadCompose, variableUses } from "../src/compose.ts";
import { composeEnvFile, parseEnvFile } from "../src/compose-env.ts";
import { repoRoot } from "../src/env-reads.ts";
import { DATABASE_ROLE } from "../src/k8s-secrets.ts";
import { SERVICES } from "../src/nats-permissions.ts";

// No Docker engine here, and no compose CLI: compose's interpolation is done by deploy/src/compose.ts
// (the Compose specification's rules), and the result is checked with the services' own start checks.
const compose = loadCompose();
const SECRET = /PASSWORD|SECRET|TOKEN|_KEY$/;
const envOf = (s: ComposeService | undefined): Record<string, string> =>
  Object.fromEntries(Object.entries(s?.environment ?? {}).map(([k, v]) => [k, String(v ?? "")]));

describe("docker-compose.yml ships no secret", () => {
  test("no secret has a default: each is required where it is defined, with how to make one", () => {
    const uses = variableUses(compose).filter((u) => SECRET.test(u.name));
    expect(new Set(uses.map((u) => u.name))).toEqual(
      new Set([
        "JWT_SECRET",
        "MIKROM_ADMIN_PASSWORD",
        "POSTGRES_PASSWORD",
        "POSTGRES_PASSWORD_GATEWAY",
        "POSTGRES_PASSWORD_VM",
        "POSTGRES_PASSWORD_IPPOOL",
        "POSTGRES_PASSWORD_AUDIT",
        "POSTGRES_PASSWORD_HOST_PROVISIONER_1",
        "NATS_PASSWORD_API_GATEWAY",
        "NATS_PASSWORD_VM_SERVICE",
        "NATS_PASSWORD_IPPOOL_SERVICE",
        "NATS_PASSWORD_HOST_PROVISIONER_1",
        "NATS_PASSWORD_AUDIT",
        "GRAFANA_ADMIN_PASSWORD",
      ]),
    );
    // Required (`:?`), or used as it is inside a URL: compose interpolates the whole file and stops
    // at the first required one missing, so a bare use never runs with an empty value.
    for (const use of uses) expect([":?", ""], `${use.name} at ${use.path}`).toContain(use.operator);
    for (const name of new Set(uses.map((u) => u.name))) {
      const required = uses.filter((u) => u.name === name && u.operator === ":?");
      expect(required.length, name).toBeGreaterThan(0);
      for (const use of required) {
        expect(use.argument, `${name} at ${use.path}`).toMatch(
          new RegExp(`^set ${name} in \\.env: openssl rand -(base64|hex) \\d+( \\| tr 0-9 g-p)?$`),
        );
      }
    }
  });

  test("with no .env compose stops, naming the secret to set and the command that makes it", () => {
    expect(() => interpolate(compose, {})).toThrow(
      /^error while interpolating [\w.-]+: required variable (\w+) is missing a value: set \1 in \.env: openssl rand -(base64|hex) \d+( \| tr 0-9 g-p)?$/,
    );
    const env = parseEnvFile(composeEnvFile());
    const { JWT_SECRET: _, ...withoutJwt } = env;
    expect(() => interpolate(compose, withoutJwt)).toThrow(
      /required variable JWT_SECRET is missing a value: set JWT_SECRET in \.env: openssl rand -base64 48/,
    );
    // An empty value is missing too (`POSTGRES_PASSWORD=` in .env).
    expect(() => interpolate(compose, { ...env, POSTGRES_PASSWORD: "" })).toThrow(/POSTGRES_PASSWORD/);
  });

  test("with the .env compose-env.ts writes, every service passes its own start checks in production", () => {
    const env = parseEnvFile(composeEnvFile());
    const again = parseEnvFile(composeEnvFile());
    expect(Object.keys(env).sort()).toEqual(
      [
        ...new Set(
          variableUses(compose)
            .filter((u) => u.operator === ":?")
            .map((u) => u.name),
        ),
      ].sort(),
    );
    for (const [name, value] of Object.entries(env)) expect(again[name], name).not.toBe(value);
    // nats-server reads a password from its environment as configuration: a letter first keeps it text.
    for (const [name, value] of Object.entries(env)) {
      if (name.startsWith("NATS_PASSWORD_")) expect(value, name).toMatch(/^[A-Za-z][\w-]{31,}$/);
    }

    const resolved = interpolate(compose, env);
    const gateway = envOf(resolved.services["api-gateway"]);
    expect(gateway.NODE_ENV).toBe("production");
    expect(gateway.JWT_SECRET).toBe(env.JWT_SECRET);
    const config = gatewayConfig(gateway);
    expect(config.environment).toBe("production");
    expect(config.admin?.password).toBe(env.MIKROM_ADMIN_PASSWORD);
    for (const service of SERVICES) {
      const vars = envOf(resolved.services[service]);
      expect(() => parseEnv(service, BaseEnv, vars), service).not.toThrow();
      // The password in the service's NATS_URL is the one the NATS server is given for its user.
      const { username, password } = new URL(vars.NATS_URL ?? "");
      const key = `NATS_PASSWORD_${username.toUpperCase().replace(/-/g, "_")}`;
      expect(envOf(resolved.services.nats)[key], service).toBe(password);
    }
  });

  test("each service connects to PostgreSQL as its own role, which db-setup makes; none as the admin", () => {
    const env = parseEnvFile(composeEnvFile());
    const resolved = interpolate(compose, env);
    const postgres = envOf(resolved.services.postgres);
    const setup = envOf(resolved.services["db-setup"]);
    const { adminUrl, targets } = setupTargets(setup);
    expect([new URL(adminUrl).username, new URL(adminUrl).password]).toEqual([
      postgres.POSTGRES_USER,
      postgres.POSTGRES_PASSWORD,
    ]);
    const passwords = new Set<string>();
    for (const service of SERVICES) {
      const vars = envOf(resolved.services[service]);
      const urls = Object.entries(vars).filter(([k]) => k.endsWith("DATABASE_URL"));
      expect(
        urls.map(([k]) => k),
        service,
      ).toContain("DATABASE_URL");
      for (const [key, value] of urls) {
        const url = new URL(value);
        // The host's role is named as its database, as `hostDatabaseUrl` derives both.
        const role = service === "provisioner" ? "mikrom_provisioner_provisioner-1" : DATABASE_ROLE[service];
        expect(url.username, `${service} ${key}`).toBe(role);
        expect(url.username).not.toBe(postgres.POSTGRES_USER);
        expect(url.password).not.toBe(postgres.POSTGRES_PASSWORD);
      }
      // The database the service uses is one db-setup gives its role, with the same password.
      const own = new URL(urls.find(([k]) => k !== "DATABASE_URL")?.[1] ?? "");
      // audit's database is owned by a role of its own; audit's role gets INSERT and SELECT only.
      expect(targets, service).toContainEqual({
        role: own.username,
        password: own.password,
        database: own.pathname.slice(1),
        ...(service === "audit" && {
          owner: expect.objectContaining({ role: "mikrom_audit_owner", tables: ["SELECT", "INSERT"] }),
        }),
      });
      passwords.add(own.password);
      expect(compose.services[service]?.depends_on).toMatchObject({
        "db-setup": { condition: "service_completed_successfully" },
      });
    }
    expect(targets).toHaveLength(SERVICES.length);
    expect(passwords.size).toBe(SERVICES.length);
  });

  test("Grafana lets no one in anonymously and has no default admin password", () => {
    const grafana = envOf(compose.services.grafana);
    expect(grafana.GF_AUTH_ANONYMOUS_ENABLED ?? "false").toBe("false");
    expect(grafana.GF_AUTH_ANONYMOUS_ORG_ROLE).toBeUndefined();
    expect(grafana.GF_SECURITY_ADMIN_PASSWORD).toMatch(/^\$\{GRAFANA_ADMIN_PASSWORD:\?/);
    const env = parseEnvFile(composeEnvFile());
    expect(envOf(interpolate(compose, env).services.grafana).GF_SECURITY_ADMIN_PASSWORD).toBe(
      env.GRAFANA_ADMIN_PASSWORD,
    );
  });

  test("a .env never reaches git or an image's build context", () => {
    for (const ignore of [".gitignore", ".dockerignore"]) {
      const lines = readFileSync(join(repoRoot, ignore), "utf8").split("\n");
      expect(lines, ignore).toContain(".env");
    }
  });
});

/** `docker compose` (v2) or `docker-compose` (v1, Debian's), when this machine has one. */
function composeCli(): string[] | undefined {
  for (const cli of [["docker", "compose"], ["docker-compose"]]) {
    const probe = spawnSync(cli[0] as string, [...cli.slice(1), "version"], { encoding: "utf8" });
    if (probe.status === 0) return cli;
  }
  return undefined;
}
const cli = composeCli();

describe.skipIf(!cli)(
  `the compose CLI (${cli?.join(" ") ?? "absent: docker compose or docker-compose"})`,
  () => {
    // Debian's docker-compose (Python) takes seconds to start, and far longer on a loaded machine.
    test("refuses the file with no .env, naming a secret and how to make it; takes it with compose-env.ts's", {
      timeout: 180_000,
    }, () => {
      const dir = mkdtempSync(join(tmpdir(), "mikrom-compose-"));
      try {
        copyFileSync(join(repoRoot, "docker-compose.yml"), join(dir, "docker-compose.yml"));
        // Only the .env beside the file: nothing of this process's environment may fill a secret in.
        const run = () =>
          spawnSync(cli![0] as string, [...cli!.slice(1), "config", "--quiet"], {
            cwd: dir,
            encoding: "utf8",
            env: { PATH: process.env.PATH ?? "" },
          });
        const refused = run();
        expect(refused.status).not.toBe(0);
        expect(refused.stderr).toMatch(/set (\w+) in \.env: openssl rand -(base64|hex) \d+/);
        writeFileSync(join(dir, ".env"), composeEnvFile());
        const taken = run();
        expect(taken.stderr).toBe("");
        expect(taken.status).toBe(0);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  },
);

describe("compose's interpolation, as the Compose specification defines it", () => {
  test("defaults, required values, alternatives and $$", () => {
    const file = {
      services: {
        s: {
          environment: {
            A: "${A:-a}|${A-b}|$A|${A}",
            B: "${B:+set}|${B+plus}|$$B|cost: $$5",
            C: "x${C:?set C}y",
          },
        },
      },
    };
    const out = interpolate(file, { B: "", C: "c" });
    expect(out.services.s?.environment).toEqual({
      A: "a|b||",
      B: "|plus|$B|cost: $5",
      C: "xcy",
    });
    expect(() => interpolate(file, { C: "" })).toThrow(/required variable C is missing a value: set C/);
    expect(() => interpolate({ services: { s: { image: "${X?gone}" } } }, {})).toThrow(/X/);
    expect(interpolate({ services: { s: { image: "${X?gone}" } } }, { X: "" }).services.s?.image).toBe("");
  });
});
