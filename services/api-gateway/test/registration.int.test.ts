import { describe, expect, test } from "@mikrom/testkit";
import pg from "pg";
import type { Registration } from "../src/config.ts";
import { problemOf, type RunningGateway, type Session, startGateway } from "./support/gateway.ts";

const PASSWORD = "correct horse battery";

const register = (gw: RunningGateway, email: string, invite?: string) =>
  gw.post("/api/v1/auth/register", { email, password: PASSWORD, ...(invite && { invite_token: invite }) });

async function refused(res: Response, status: number): Promise<string> {
  const p = await problemOf(res);
  expect(p.status).toBe(status);
  expect(p.type).toContain("application/problem+json");
  return String(p.body.detail);
}

async function invite(gw: RunningGateway, root: Session, body: unknown = {}): Promise<string> {
  const res = await gw.post("/api/v1/auth/invites", body, root.auth);
  expect(res.status).toBe(201);
  const out = await res.json();
  expect(Date.parse(out.expires_at)).toBeGreaterThan(Date.now());
  return out.token;
}

async function withMode(
  dbUrl: string,
  mode: Registration,
  fn: (gw: RunningGateway, root: Session) => Promise<void>,
) {
  const gw = await startGateway(dbUrl, { config: { registration: mode } });
  try {
    await fn(gw, await gw.user("root", { superuser: true }));
  } finally {
    await gw.close();
  }
}

describe("registration modes", () => {
  test("closed: nobody registers, invitation or not; existing users still log in", async ({ db }) => {
    await withMode(db.url, "closed", async (gw, root) => {
      expect(await refused(await register(gw, "shut@example.com"), 403)).toMatch(/closed/);
      expect(await refused(await register(gw, "shut@example.com", await invite(gw, root)), 403)).toMatch(
        /closed/,
      );
      const me = await (await gw.fetch("/api/v1/auth/me", { headers: root.auth })).json();
      expect((await gw.post("/api/v1/auth/login", { email: me.email, password: PASSWORD })).status).toBe(200);
    });
  });

  test("invite: only with an invitation, used once; a refused registration does not spend it", async ({
    db,
  }) => {
    await withMode(db.url, "invite", async (gw, root) => {
      const taken = await gw.user("taken");
      expect(await refused(await register(gw, "nope@example.com"), 403)).toMatch(/invitation/);
      expect(await refused(await register(gw, "nope@example.com", "inv_made-up"), 403)).toMatch(/not valid/);
      const token = await invite(gw, root);
      await refused(await register(gw, taken.email, token), 409);
      const ok = await register(gw, "welcome@example.com", token);
      expect(ok.status).toBe(201);
      expect((await ok.json()).access_token).toEqual(expect.any(String));
      expect(await refused(await register(gw, "second@example.com", token), 403)).toMatch(/not valid/);
    });
  });

  test("invite: an expired invitation is refused", async ({ db }) => {
    await withMode(db.url, "invite", async (gw, root) => {
      const token = await invite(gw, root, { ttl_hours: 1 });
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      try {
        await client.query("UPDATE invites SET expires_at = now() - interval '1 second'");
      } finally {
        await client.end();
      }
      expect(await refused(await register(gw, "late@example.com", token), 403)).toMatch(/not valid/);
    });
  });

  test("only a superuser issues invitations", async ({ db }) => {
    await withMode(db.url, "invite", async (gw) => {
      const user = await gw.user("plain");
      await refused(await gw.post("/api/v1/auth/invites", {}, user.auth), 403);
      await refused(await gw.post("/api/v1/auth/invites", {}), 401);
      await refused(await gw.post("/api/v1/auth/invites", { ttl_hours: 0 }, user.auth), 403);
    });
  });

  test("open: anyone registers, no invitation needed", async ({ db }) => {
    await withMode(db.url, "open", async (gw) => {
      expect((await register(gw, "anyone@example.com")).status).toBe(201);
    });
  });
});
