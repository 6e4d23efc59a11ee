import { describe, expect, test } from "@mikrom/testkit";
import { problemOf, startGateway } from "./support/gateway.ts";

const PASSWORD = "correct horse battery";

function expectProblem(
  p: { status: number; type: string | null; body: Record<string, unknown> },
  status: number,
): void {
  expect(p.status).toBe(status);
  expect(p.type).toContain("application/problem+json");
  expect(typeof p.body.detail).toBe("string");
  expect(p.body.error).toBe(p.body.detail);
  expect(p.body.status).toBe(status);
}

describe("registration", () => {
  test("register answers 201 with the user at the top, under `user`, and tokens", async ({ db }) => {
    const gw = await startGateway(db.url);
    try {
      const res = await gw.post("/api/v1/auth/register", {
        email: "ana@example.com",
        password: PASSWORD,
        name: "Ana Lima",
      });
      expect(res.status).toBe(201);
      const body = await res.json();
      expect(body).toMatchObject({
        email: "ana@example.com",
        username: "ana",
        full_name: "Ana Lima",
        name: "Ana Lima",
        is_active: true,
        is_superuser: false,
        token_type: "bearer",
      });
      expect(body.user).toMatchObject({ id: body.id, email: "ana@example.com", name: "Ana Lima" });
      expect(body.user.created_at).toMatch(/^\d{4}-\d\d-\d\dT/);
      expect(body.token).toBe(body.access_token);
      expect(body).not.toHaveProperty("hashed_password");
      const me = await gw.fetch("/api/v1/auth/me", { headers: { Authorization: `Bearer ${body.token}` } });
      expect((await me.json()).email).toBe("ana@example.com");
    } finally {
      await gw.close();
    }
  });

  test("a second account with the same email (any case) is a 409; a taken username gets a suffix", async ({
    db,
  }) => {
    const gw = await startGateway(db.url);
    try {
      expect(
        (await gw.post("/api/v1/auth/register", { email: "bob@example.com", password: PASSWORD })).status,
      ).toBe(201);
      expectProblem(
        await problemOf(
          await gw.post("/api/v1/auth/register", { email: "BOB@example.com", password: PASSWORD }),
        ),
        409,
      );
      const other = await (
        await gw.post("/api/v1/auth/register", { email: "bob@other.org", password: PASSWORD })
      ).json();
      expect(other.username).toMatch(/^bob-[0-9a-f]{6}$/);
    } finally {
      await gw.close();
    }
  });

  test("a taken email and a taken username get one and the same refusal, which names neither", async ({
    db,
  }) => {
    const gw = await startGateway(db.url);
    try {
      const first = { email: "carol@example.com", password: PASSWORD, username: "carol" };
      expect((await gw.post("/api/v1/auth/register", first)).status).toBe(201);
      const byEmail = await problemOf(
        await gw.post("/api/v1/auth/register", { email: "Carol@example.com", password: PASSWORD }),
      );
      const byUsername = await problemOf(
        await gw.post("/api/v1/auth/register", { ...first, email: "someone@else.org" }),
      );
      expectProblem(byEmail, 409);
      expectProblem(byUsername, 409);
      // Nothing in the wording tells which one exists, nor echoes the address.
      expect(byEmail.body.detail).toBe(byUsername.body.detail);
      expect(String(byEmail.body.detail)).not.toMatch(/already exists|carol/i);
      expect(byEmail.body.detail).toBe("Registration failed: choose another email or username");
    } finally {
      await gw.close();
    }
  });

  test("invalid and malformed bodies are 422 listing each field", async ({ db }) => {
    const gw = await startGateway(db.url);
    try {
      const bad = await problemOf(
        await gw.post("/api/v1/auth/register", { email: "nope", password: "short" }),
      );
      expectProblem(bad, 422);
      const fields = (bad.body.errors as Array<{ field: string }>).map((e) => e.field).sort();
      expect(fields).toEqual(["body.email", "body.password"]);
      const long = await problemOf(
        await gw.post("/api/v1/auth/register", { email: "a@b.io", password: "x".repeat(101) }),
      );
      expect((long.body.errors as Array<{ field: string }>).map((e) => e.field)).toEqual(["body.password"]);
      const malformed = await problemOf(await gw.post("/api/v1/auth/register", "{not json"));
      expectProblem(malformed, 422);
      expect((malformed.body.errors as Array<{ field: string }>)[0]?.field).toBe("body");
    } finally {
      await gw.close();
    }
  });
});

describe("login", () => {
  test("form login takes a username or an email; JSON login and the Go client's JSON call answer the same", async ({
    db,
  }) => {
    const gw = await startGateway(db.url);
    try {
      await gw.post("/api/v1/auth/register", {
        email: "cy@example.com",
        password: PASSWORD,
        username: "cyrus",
      });
      for (const username of ["cyrus", "cy@example.com", "CY@Example.com"]) {
        const res = await gw.fetch("/api/v1/auth/login", {
          method: "POST",
          headers: { "Content-Type": "application/x-www-form-urlencoded" },
          body: new URLSearchParams({ username, password: PASSWORD }),
        });
        expect(res.status).toBe(200);
        expect((await res.json()).token_type).toBe("bearer");
      }
      const json = await gw.post("/api/v1/auth/login/json", { username: "cyrus", password: PASSWORD });
      expect(json.status).toBe(200);
      const go = await (
        await gw.post("/api/v1/auth/login", { email: "cy@example.com", password: PASSWORD })
      ).json();
      expect(Object.keys(go.user).sort()).toEqual(
        expect.arrayContaining(["id", "email", "name", "created_at", "updated_at"]),
      );
      expect(go.token).toBe(go.access_token);
      const profile = await gw.fetch("/api/v1/auth/profile", {
        headers: { Authorization: `Bearer ${go.token}` },
      });
      expect((await profile.json()).name).toBe("cyrus");
    } finally {
      await gw.close();
    }
  });

  test("a wrong password and an unknown user are the same 401", async ({ db }) => {
    const gw = await startGateway(db.url);
    try {
      await gw.post("/api/v1/auth/register", { email: "di@example.com", password: PASSWORD });
      const wrong = await problemOf(
        await gw.post("/api/v1/auth/login", { email: "di@example.com", password: "wrong password" }),
      );
      const unknown = await problemOf(
        await gw.post("/api/v1/auth/login", { email: "zz@example.com", password: "wrong password" }),
      );
      expectProblem(wrong, 401);
      expect(unknown.body.detail).toBe(wrong.body.detail);
      expectProblem(await problemOf(await gw.post("/api/v1/auth/login/json", { password: "x" })), 422);
    } finally {
      await gw.close();
    }
  });
});

describe("tokens", () => {
  test("no token, a malformed header and a tampered signature are 401", async ({ db }) => {
    const gw = await startGateway(db.url);
    try {
      const ana = await gw.user("ana");
      expectProblem(await problemOf(await gw.fetch("/api/v1/auth/me")), 401);
      expectProblem(
        await problemOf(await gw.fetch("/api/v1/auth/me", { headers: { Authorization: "Bearer" } })),
        401,
      );
      expectProblem(
        await problemOf(await gw.fetch("/api/v1/auth/me", { headers: { Authorization: "Basic abc" } })),
        401,
      );
      const [h, p, s] = ana.token.split(".");
      const flipped = `${h}.${p}.${s![0] === "A" ? "B" : "A"}${s!.slice(1)}`;
      expectProblem(
        await problemOf(
          await gw.fetch("/api/v1/auth/me", { headers: { Authorization: `Bearer ${flipped}` } }),
        ),
        401,
      );
      const forged = JSON.parse(Buffer.from(p!, "base64url").toString());
      forged.sub = "999";
      const swapped = `${h}.${Buffer.from(JSON.stringify(forged)).toString("base64url")}.${s}`;
      expectProblem(
        await problemOf(
          await gw.fetch("/api/v1/auth/me", { headers: { Authorization: `Bearer ${swapped}` } }),
        ),
        401,
      );
      expect((await gw.fetch("/api/v1/auth/me", { headers: ana.auth })).status).toBe(200);
    } finally {
      await gw.close();
    }
  });

  test("an access token past its 30 minutes is 401", async ({ db }) => {
    let now = Date.now();
    const gw = await startGateway(db.url, { now: () => now });
    try {
      const ana = await gw.user("ana");
      expect((await gw.fetch("/api/v1/auth/me", { headers: ana.auth })).status).toBe(200);
      now += 31 * 60 * 1000;
      const expired = await problemOf(await gw.fetch("/api/v1/auth/me", { headers: ana.auth }));
      expectProblem(expired, 401);
      expect(expired.body.detail).toMatch(/expired/i);
    } finally {
      await gw.close();
    }
  });

  test("a refresh token is no access token and an access token is no refresh token", async ({ db }) => {
    const gw = await startGateway(db.url);
    try {
      const ana = await gw.user("ana");
      const asAccess = { Authorization: `Bearer ${ana.refresh}` };
      expectProblem(await problemOf(await gw.fetch("/api/v1/auth/me", { headers: asAccess })), 401);
      expectProblem(
        await problemOf(await gw.post("/api/v1/auth/refresh", { refresh_token: ana.token })),
        401,
      );
    } finally {
      await gw.close();
    }
  });

  test("refresh rotates: the new pair works, the used token is refused and revokes the new one too", async ({
    db,
  }) => {
    const gw = await startGateway(db.url);
    try {
      const ana = await gw.user("ana");
      const first = await gw.post("/api/v1/auth/refresh", { refresh_token: ana.refresh });
      expect(first.status).toBe(200);
      const pair = await first.json();
      expect(pair.refresh_token).not.toBe(ana.refresh);
      expect(
        (await gw.fetch("/api/v1/auth/me", { headers: { Authorization: `Bearer ${pair.access_token}` } }))
          .status,
      ).toBe(200);

      expectProblem(
        await problemOf(await gw.post("/api/v1/auth/refresh", { refresh_token: ana.refresh })),
        401,
      );
      // Reuse means the token leaked: the rotated one is revoked with it.
      expectProblem(
        await problemOf(await gw.post("/api/v1/auth/refresh", { refresh_token: pair.refresh_token })),
        401,
      );
    } finally {
      await gw.close();
    }
  });

  test("two refreshes racing with one token: exactly one wins", async ({ db }) => {
    const gw = await startGateway(db.url);
    try {
      const ana = await gw.user("ana");
      const results = await Promise.all(
        [1, 2, 3].map(() => gw.post("/api/v1/auth/refresh", { refresh_token: ana.refresh })),
      );
      expect(results.map((r) => r.status).sort()).toEqual([200, 401, 401]);
      // The copies that lost mean the token leaked: every session ended, the winner's new one too.
      const won = (await results.find((r) => r.status === 200)!.json()) as { access_token: string };
      const me = await gw.fetch("/api/v1/auth/me", {
        headers: { authorization: `Bearer ${won.access_token}` },
      });
      expect(me.status).toBe(401);
    } finally {
      await gw.close();
    }
  });
});

test("health answers exactly {status: ok} on both paths; readiness reports NATS down as 503", async ({
  db,
}) => {
  const gw = await startGateway(db.url);
  try {
    for (const path of ["/health", "/api/v1/health"]) {
      const res = await gw.fetch(path);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ status: "ok" });
      expect(res.headers.get("x-request-id")).toBeTruthy();
      expect(res.headers.get("x-process-time")).toMatch(/^\d+\.\d+$/);
    }
    const ready = await gw.fetch("/api/v1/health/ready");
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ status: "not_ready", checks: { nats: "failing", database: "ok" } });
  } finally {
    await gw.close();
  }
});

test("the first superuser comes from the environment once; an existing account is left alone", async ({
  db,
}) => {
  const gw = await startGateway(db.url);
  try {
    expect(await gw.accounts.ensureAdmin("root@example.com", "root password 1")).toBe("created");
    expect(await gw.accounts.ensureAdmin("root@example.com", "another password")).toBe("exists");
    const login = await (
      await gw.post("/api/v1/auth/login", { email: "root@example.com", password: "root password 1" })
    ).json();
    expect(login.user).toMatchObject({ username: "admin", is_superuser: true });
    expect(
      (await gw.fetch("/api/v1/users", { headers: { Authorization: `Bearer ${login.token}` } })).status,
    ).toBe(200);
  } finally {
    await gw.close();
  }
});
