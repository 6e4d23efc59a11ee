import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { BaseEnv, PASSWORD, parseEnv, SIGNING_KEY, secretProblem } from "../src/index.ts";

describe("secrets", () => {
  it.each([
    ["openssl rand -base64 48", randomBytes(48).toString("base64")],
    ["openssl rand -hex 32", randomBytes(32).toString("hex")],
    ["a long passphrase", "glacier-orbit-fennel-tundra-mosaic-lantern-quiver"],
  ])("a signing key made like %s is accepted", (_, value) => {
    expect(secretProblem("JWT_SECRET", value, SIGNING_KEY)).toBeUndefined();
  });

  it.each([
    ["the compose default of old", "development-only-secret-change-me-0123456789"],
    ["the Kubernetes example of old", "change-me-to-32-or-more-random-characters"],
    ["a placeholder", "<replace-with-a-random-secret-of-32-chars>"],
    ["an example", "this-is-an-example-secret-for-the-docs-only"],
    ["too short", randomBytes(12).toString("base64")],
    ["one character over and over", "a".repeat(64)],
    ["a run of the alphabet", "abcdefghijklmnopqrstuvwxyz0123456789"],
    ["a word repeated", "secretsecretsecretsecretsecretsecret"],
  ])("a signing key that is %s is refused, with what to set and how to make one", (_, value) => {
    const problem = secretProblem("JWT_SECRET", value, SIGNING_KEY);
    expect(problem).toMatch(/^JWT_SECRET: .+: set JWT_SECRET to a random value .*`openssl rand -base64 48`/);
    // The value itself is never repeated: a refused secret may still be somebody's real one.
    expect(problem).not.toContain(value);
  });

  it("an admin password may be a passphrase, never a known default or a short word", () => {
    expect(secretProblem("MIKROM_ADMIN_PASSWORD", "correct horse battery staple", PASSWORD)).toBeUndefined();
    expect(
      secretProblem("MIKROM_ADMIN_PASSWORD", randomBytes(18).toString("base64"), PASSWORD),
    ).toBeUndefined();
    for (const value of ["mikrom-admin", "change-me-admin", "admin", "password1234", "Admin123"]) {
      expect(secretProblem("MIKROM_ADMIN_PASSWORD", value, PASSWORD), value).toMatch(
        /^MIKROM_ADMIN_PASSWORD: .*`openssl rand -base64 18`/,
      );
    }
  });

  it("no service starts with a placeholder password inside its NATS or database URL", () => {
    const env = (vars: Record<string, string>) => () => parseEnv("vm-service", BaseEnv, vars);
    expect(env({ NATS_URL: "nats://vm-service:change-me-vm-service@nats:4222" })).toThrow(
      /NATS_URL: its password is a placeholder.*openssl rand -hex 32/,
    );
    expect(env({ DATABASE_URL: "postgres://mikrom:change-me-db@db:5432/mikrom" })).toThrow(
      /DATABASE_URL: its password is a placeholder/,
    );
    expect(env({ NATS_URL: "nats://a:x@n1:4222,nats://b:example-password@n2:4222" })).toThrow(/NATS_URL/);
    // No password at all (a local server, trust authentication) or a real one is fine.
    expect(
      env({ NATS_URL: "nats://127.0.0.1:4222", DATABASE_URL: "postgres://postgres@127.0.0.1/mikrom" }),
    ).not.toThrow();
    const real = randomBytes(32).toString("hex");
    expect(env({ NATS_URL: `nats://vm-service:${real}@nats:4222` })).not.toThrow();
  });
});
