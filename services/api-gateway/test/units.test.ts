import { randomBytes } from "node:crypto";
import { SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { InvalidToken, TOKEN_AUDIENCE, TOKEN_ISSUER, Tokens } from "../src/auth/tokens.ts";
import { ConfigError, gatewayDatabaseUrl, loadConfig } from "../src/config.ts";

describe("config", () => {
  it("defaults everything in development and derives the gateway's own database", () => {
    const config = loadConfig({ DATABASE_URL: "postgres://u@db:5432/mikrom" });
    expect(config.port).toBe(8080);
    expect(config.namespace).toBe("mikrom");
    expect(config.databaseUrl).toBe("postgres://u@db:5432/mikrom_gateway");
    expect(config.jwtSecretGenerated).toBe(true);
    expect(config.jwtSecret.length).toBeGreaterThanOrEqual(32);
    expect(gatewayDatabaseUrl("postgres://u@db/mikrom_gateway")).toBe("postgres://u@db/mikrom_gateway");
  });

  it("registration is by invitation in production and open in development, unless MIKROM_REGISTRATION says", () => {
    const production = { NODE_ENV: "production", JWT_SECRET: "Zx8#kQ2!vL9@pR4$mN7%tY1^wB6&cH3*" } as const;
    expect(loadConfig({ ...production }).registration).toBe("invite");
    expect(loadConfig({}).registration).toBe("open");
    expect(loadConfig({ ...production, MIKROM_REGISTRATION: "open" }).registration).toBe("open");
    expect(loadConfig({ MIKROM_REGISTRATION: "closed" }).registration).toBe("closed");
    expect(() => loadConfig({ MIKROM_REGISTRATION: "sometimes" })).toThrow(/MIKROM_REGISTRATION/);
  });

  it("names every malformed variable at once", () => {
    expect(() => loadConfig({ PORT: "x", JWT_SECRET: "short", CORS_ORIGINS: "*" })).toThrow(
      /PORT[\s\S]*JWT_SECRET/,
    );
  });

  it("refuses production without a JWT secret, and an admin email without a password", () => {
    expect(() => loadConfig({ NODE_ENV: "production" })).toThrow(ConfigError);
    expect(() => loadConfig({ MIKROM_ADMIN_EMAIL: "root@example.com" })).toThrow(/go together/);
  });

  it("refuses production with a default, placeholder, short or regular secret, saying what to set and how", () => {
    const good = { NODE_ENV: "production", JWT_SECRET: randomBytes(48).toString("base64") };
    expect(loadConfig(good).jwtSecret).toBe(good.JWT_SECRET);
    for (const jwt of [
      "development-only-secret-change-me-0123456789", // docker-compose.yml's default of old
      "change-me-to-32-or-more-random-characters", // the Kubernetes example of old
      "change-me",
      "0123456789abcdef0123456789abcdef",
    ]) {
      expect(() => loadConfig({ ...good, JWT_SECRET: jwt }), jwt).toThrow(
        /JWT_SECRET: .*set JWT_SECRET to a random value .*`openssl rand -base64 48`/,
      );
    }
    const admin = { ...good, MIKROM_ADMIN_EMAIL: "root@example.com" };
    for (const password of ["mikrom-admin", "change-me-admin", "admin12345"]) {
      expect(() => loadConfig({ ...admin, MIKROM_ADMIN_PASSWORD: password }), password).toThrow(
        /MIKROM_ADMIN_PASSWORD: .*`openssl rand -base64 18`/,
      );
    }
    expect(loadConfig({ ...admin, MIKROM_ADMIN_PASSWORD: "glacier orbit fennel tundra" }).admin?.email).toBe(
      "root@example.com",
    );
    // Both at once: every problem is named in one error.
    expect(() =>
      loadConfig({
        ...admin,
        JWT_SECRET: "change-me-to-32-or-more-random-characters",
        MIKROM_ADMIN_PASSWORD: "mikrom-admin",
      }),
    ).toThrow(/JWT_SECRET[\s\S]*MIKROM_ADMIN_PASSWORD/);
    // Development keeps working with whatever it is given.
    expect(loadConfig({ JWT_SECRET: "development-only-secret-change-me-0123456789" }).environment).toBe(
      "development",
    );
  });

  it("trusts no proxy by default, takes a list of proxies, and refuses trusting every peer", () => {
    expect(loadConfig({}).trustProxy).toEqual([]);
    expect(loadConfig({ TRUST_PROXY: "false" }).trustProxy).toEqual([]);
    expect(loadConfig({ TRUST_PROXY: "loopback, 10.0.0.0/8,192.168.1.7" }).trustProxy).toEqual([
      "loopback",
      "10.0.0.0/8",
      "192.168.1.7",
    ]);
    expect(() => loadConfig({ TRUST_PROXY: "true" })).toThrow(/TRUST_PROXY.*list the proxies/);
    expect(() => loadConfig({ TRUST_PROXY: "not-an-address" })).toThrow(/TRUST_PROXY/);
  });

  it("splits CORS origins", () => {
    expect(loadConfig({ CORS_ORIGINS: "https://a.example, https://b.example" }).corsOrigins).toEqual([
      "https://a.example",
      "https://b.example",
    ]);
  });
});

describe("tokens", () => {
  const SECRET = "a-secret-that-is-long-enough-for-hs256!";
  const tokens = new Tokens(SECRET);

  it("round-trips an access token and keeps the two types apart", async () => {
    const access = await tokens.issue(7, "access");
    expect(await tokens.verify(access.token, "access")).toMatchObject({
      userId: 7,
      type: "access",
      jti: access.jti,
    });
    await expect(tokens.verify(access.token, "refresh")).rejects.toBeInstanceOf(InvalidToken);
  });

  it("remembers a verified token until it expires, then refuses it as expired", async () => {
    let now = Date.parse("2026-01-01T00:00:00Z");
    const clocked = new Tokens(SECRET, () => now);
    const access = await clocked.issue(7, "access", { ttlSeconds: 60 });
    const first = await clocked.verify(access.token, "access");
    expect(await clocked.verify(access.token, "access")).toBe(first);
    // Remembered as an access token, it is still no refresh token.
    await expect(clocked.verify(access.token, "refresh")).rejects.toThrow(/Invalid token type/);
    now += 59_999;
    expect(await clocked.verify(access.token, "access")).toBe(first);
    now += 1;
    await expect(clocked.verify(access.token, "access")).rejects.toThrow(/expired/);
    await expect(clocked.verify(access.token, "access")).rejects.toThrow(/expired/);
  });

  /** A token as an attacker would make one: these claims and header, signed with `key` (none: unsigned). */
  async function forge(
    claims: Record<string, unknown>,
    options: { alg?: "HS256" | "HS512"; key?: string } = {},
  ): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const payload = {
      sub: "7",
      type: "access",
      gen: 0,
      jti: "j-1",
      iss: TOKEN_ISSUER,
      aud: TOKEN_AUDIENCE,
      iat: now,
      exp: now + 600,
      ...claims,
    };
    const body = Object.fromEntries(Object.entries(payload).filter(([, v]) => v !== undefined));
    if (options.key === undefined && options.alg === undefined)
      return `${Buffer.from('{"alg":"none","typ":"JWT"}').toString("base64url")}.${Buffer.from(JSON.stringify(body)).toString("base64url")}.`;
    return new SignJWT(body)
      .setProtectedHeader({ alg: options.alg ?? "HS256", typ: "JWT" })
      .sign(new TextEncoder().encode(options.key ?? SECRET));
  }

  it("takes a well-made token, and that is what the tampering cases below depart from", async () => {
    expect(await tokens.verify(await forge({}, { key: SECRET }), "access")).toMatchObject({ userId: 7 });
  });

  it.each<[string, Record<string, unknown>, { alg?: "HS256" | "HS512"; key?: string }, RegExp]>([
    ["alg none, unsigned", {}, {}, /Could not validate/],
    ["signed with another key", {}, { key: "another-secret-that-is-long-enough!!!" }, /Could not validate/],
    [
      "HS512 with the right key (algorithm switched)",
      {},
      { alg: "HS512", key: SECRET },
      /Could not validate/,
    ],
    ["expired", { exp: Math.floor(Date.now() / 1000) - 60 }, { key: SECRET }, /expired/],
    ["for another audience", { aud: "grafana" }, { key: SECRET }, /Could not validate/],
    ["with no audience", { aud: undefined }, { key: SECRET }, /Could not validate/],
    ["from another issuer", { iss: "someone-else" }, { key: SECRET }, /Could not validate/],
    ["a refresh token used as access", { type: "refresh" }, { key: SECRET }, /Invalid token type/],
    ["with no type", { type: undefined }, { key: SECRET }, /Invalid token type/],
    ["with a subject that is no user id", { sub: "admin" }, { key: SECRET }, /Could not validate/],
    ["with no expiry", { exp: undefined }, { key: SECRET }, /Could not validate/],
  ])("refuses a token %s", async (_name, claims, options, reason) => {
    await expect(tokens.verify(await forge(claims, options), "access")).rejects.toThrow(reason);
  });
});
