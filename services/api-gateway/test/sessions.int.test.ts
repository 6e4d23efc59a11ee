import { describe, expect, test } from "@mikrom/testkit";
import { problemOf, type RunningGateway, type Session, startGateway } from "./support/gateway.ts";

const PASSWORD = "correct horse battery";

const put = (gw: RunningGateway, who: Session, body: unknown) =>
  gw.fetch(`/api/v1/users/${who.id}`, {
    method: "PUT",
    headers: { ...who.auth, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });

const me = (gw: RunningGateway, token: string) =>
  gw.fetch("/api/v1/auth/me", { headers: { Authorization: `Bearer ${token}` } });

async function expectRefused(res: Response, status: number): Promise<void> {
  const p = await problemOf(res);
  expect(p.status).toBe(status);
  expect(p.type).toContain("application/problem+json");
}

describe("sessions end when they should", () => {
  test("changing one's own password takes the current one: missing is a 422, wrong a 403", async ({ db }) => {
    const gw = await startGateway(db.url);
    try {
      const a = await gw.user("pw");
      const missing = await problemOf(await put(gw, a, { password: "a brand new password" }));
      expect(missing.status).toBe(422);
      expect(missing.type).toContain("application/problem+json");
      expect(JSON.stringify(missing.body.errors)).toContain("current_password");
      await expectRefused(
        await put(gw, a, { password: "a brand new password", current_password: "not my password" }),
        403,
      );
      // Neither refusal changed anything: the old password still logs in.
      expect((await gw.post("/api/v1/auth/login", { email: a.email, password: PASSWORD })).status).toBe(200);
      const ok = await put(gw, a, { password: "a brand new password", current_password: PASSWORD });
      expect(ok.status).toBe(200);
      const login = await gw.post("/api/v1/auth/login", { email: a.email, password: "a brand new password" });
      expect(login.status).toBe(200);
    } finally {
      await gw.close();
    }
  });

  test("a password change ends the access tokens issued before it, at once", async ({ db }) => {
    const gw = await startGateway(db.url);
    try {
      const a = await gw.user("pwend");
      const other = await (
        await gw.post("/api/v1/auth/login", { email: a.email, password: PASSWORD })
      ).json();
      expect((await me(gw, other.access_token)).status).toBe(200);
      const changed = await put(gw, a, { password: "a brand new password", current_password: PASSWORD });
      expect(changed.status).toBe(200);
      await expectRefused(await me(gw, a.token), 401);
      await expectRefused(await me(gw, other.access_token), 401);
      await expectRefused(await gw.post("/api/v1/auth/refresh", { refresh_token: other.refresh_token }), 401);
      // A new login works.
      const fresh = await (
        await gw.post("/api/v1/auth/login", { email: a.email, password: "a brand new password" })
      ).json();
      expect((await me(gw, fresh.access_token)).status).toBe(200);
    } finally {
      await gw.close();
    }
  });

  test("logout ends every access and refresh token of the user, on every device", async ({ db }) => {
    const gw = await startGateway(db.url);
    try {
      const a = await gw.user("out");
      const b = await gw.user("bystander");
      const laptop = await (
        await gw.post("/api/v1/auth/login", { email: a.email, password: PASSWORD })
      ).json();
      const out = await gw.fetch("/api/v1/auth/logout", { method: "POST", headers: a.auth });
      expect(out.status).toBe(204);
      await expectRefused(await me(gw, a.token), 401);
      await expectRefused(await me(gw, laptop.access_token), 401);
      await expectRefused(await gw.post("/api/v1/auth/refresh", { refresh_token: a.refresh }), 401);
      await expectRefused(
        await gw.post("/api/v1/auth/refresh", { refresh_token: laptop.refresh_token }),
        401,
      );
      await expectRefused(await gw.fetch("/api/v1/auth/logout", { method: "POST" }), 401);
      // Another user is untouched; logging in again works.
      expect((await me(gw, b.token)).status).toBe(200);
      const again = await (
        await gw.post("/api/v1/auth/login", { email: a.email, password: PASSWORD })
      ).json();
      expect((await me(gw, again.access_token)).status).toBe(200);
    } finally {
      await gw.close();
    }
  });

  test("a refresh token presented twice ends the access tokens of the user too", async ({ db }) => {
    const gw = await startGateway(db.url);
    try {
      const a = await gw.user("reuse");
      const first = await gw.post("/api/v1/auth/refresh", { refresh_token: a.refresh });
      expect(first.status).toBe(200);
      const rotated = await first.json();
      expect((await me(gw, rotated.access_token)).status).toBe(200);
      await expectRefused(await gw.post("/api/v1/auth/refresh", { refresh_token: a.refresh }), 401);
      // Whoever held either pair is out: the thief's copy and the owner's rotated tokens alike.
      await expectRefused(await me(gw, a.token), 401);
      await expectRefused(await me(gw, rotated.access_token), 401);
      await expectRefused(
        await gw.post("/api/v1/auth/refresh", { refresh_token: rotated.refresh_token }),
        401,
      );
    } finally {
      await gw.close();
    }
  });

  test("a stale refresh token presented after a logout is refused without ending the new session", async ({
    db,
  }) => {
    const gw = await startGateway(db.url);
    try {
      const a = await gw.user("stale");
      expect((await gw.fetch("/api/v1/auth/logout", { method: "POST", headers: a.auth })).status).toBe(204);
      const again = await (
        await gw.post("/api/v1/auth/login", { email: a.email, password: PASSWORD })
      ).json();
      await expectRefused(await gw.post("/api/v1/auth/refresh", { refresh_token: a.refresh }), 401);
      expect((await me(gw, again.access_token)).status).toBe(200);
      expect((await gw.post("/api/v1/auth/refresh", { refresh_token: again.refresh_token })).status).toBe(
        200,
      );
    } finally {
      await gw.close();
    }
  });
});
