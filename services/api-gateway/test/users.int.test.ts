import { describe, expect, test } from "@mikrom/testkit";
import { problemOf, type RunningGateway, type Session, startGateway } from "./support/gateway.ts";

interface Cast {
  gw: RunningGateway;
  a: Session;
  b: Session;
  root: Session;
}

async function cast(dbUrl: string): Promise<Cast> {
  const gw = await startGateway(dbUrl);
  const [a, b, root] = await Promise.all([gw.user("a"), gw.user("b"), gw.user("root", { superuser: true })]);
  return { gw, a, b, root };
}

const put = (gw: RunningGateway, path: string, who: Session, body: unknown) =>
  gw.fetch(path, {
    method: "PUT",
    headers: { ...who.auth, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });

describe("users: who may do what", () => {
  test("only a superuser lists users, paged", async ({ db }) => {
    const { gw, a, root } = await cast(db.url);
    try {
      expect((await problemOf(await gw.fetch("/api/v1/users", { headers: a.auth }))).status).toBe(403);
      expect((await gw.fetch("/api/v1/users")).status).toBe(401);
      const page = await (await gw.fetch("/api/v1/users?page=1&page_size=2", { headers: root.auth })).json();
      expect(page).toMatchObject({ total: 3, page: 1, page_size: 2, total_pages: 2 });
      expect(page.items).toHaveLength(2);
      expect(
        (await problemOf(await gw.fetch("/api/v1/users?page_size=101", { headers: root.auth }))).status,
      ).toBe(422);
    } finally {
      await gw.close();
    }
  });

  test("a user reads themselves but not another; a superuser reads anyone; unknown is 404", async ({
    db,
  }) => {
    const { gw, a, b, root } = await cast(db.url);
    try {
      expect((await gw.fetch(`/api/v1/users/${a.id}`, { headers: a.auth })).status).toBe(200);
      expect((await gw.fetch(`/api/v1/users/${b.id}`, { headers: a.auth })).status).toBe(403);
      expect((await gw.fetch(`/api/v1/users/${a.id}`, { headers: root.auth })).status).toBe(200);
      expect((await gw.fetch("/api/v1/users/99999", { headers: root.auth })).status).toBe(404);
      expect((await gw.fetch("/api/v1/users/abc", { headers: root.auth })).status).toBe(422);
      expect((await gw.fetch(`/api/v1/users/${a.id}`)).status).toBe(401);
    } finally {
      await gw.close();
    }
  });

  test("a user changes their own name and password, never their superuser flag, never another user", async ({
    db,
  }) => {
    const { gw, a, b, root } = await cast(db.url);
    try {
      const renamed = await put(gw, `/api/v1/users/${a.id}`, a, {
        full_name: "Ana A",
        password: "a brand new password",
        current_password: "correct horse battery",
      });
      expect(renamed.status).toBe(200);
      expect((await renamed.json()).full_name).toBe("Ana A");
      const login = await gw.post("/api/v1/auth/login", { email: a.email, password: "a brand new password" });
      expect(login.status).toBe(200);
      // The sessions from before the change are over.
      expect((await gw.post("/api/v1/auth/refresh", { refresh_token: a.refresh })).status).toBe(401);
      expect((await gw.fetch("/api/v1/auth/me", { headers: a.auth })).status).toBe(401);
      const fresh = { ...a, auth: { Authorization: `Bearer ${(await login.json()).access_token}` } };

      const elevate = await problemOf(await put(gw, `/api/v1/users/${a.id}`, fresh, { is_superuser: true }));
      expect(elevate.status).toBe(403);
      expect(elevate.body.error).toBe(elevate.body.detail);
      expect((await put(gw, `/api/v1/users/${b.id}`, fresh, { full_name: "hacked" })).status).toBe(403);
      expect((await put(gw, `/api/v1/users/${a.id}`, fresh, { email: "not-an-email" })).status).toBe(422);
      // Taken: the same refusal whichever is taken, naming neither (accounts are not confirmed by it).
      const taken = await problemOf(await put(gw, `/api/v1/users/${a.id}`, fresh, { email: b.email }));
      expect(taken.status).toBe(409);
      const rootName = (await (await gw.fetch("/api/v1/auth/me", { headers: root.auth })).json()).username;
      const takenName = await problemOf(
        await put(gw, `/api/v1/users/${a.id}`, fresh, { username: rootName }),
      );
      expect(takenName.status).toBe(409);
      expect(taken.body.detail).toBe(takenName.body.detail);
      expect(String(taken.body.detail)).not.toMatch(/already exists/);
      const me = await (await gw.fetch("/api/v1/auth/me", { headers: fresh.auth })).json();
      expect(me.is_superuser).toBe(false);
    } finally {
      await gw.close();
    }
  });

  test("a superuser changes anyone, including making them superuser, and deactivates them", async ({
    db,
  }) => {
    const { gw, a, root } = await cast(db.url);
    try {
      const promoted = await put(gw, `/api/v1/users/${a.id}`, root, { is_superuser: true });
      expect((await promoted.json()).is_superuser).toBe(true);
      await put(gw, `/api/v1/users/${a.id}`, root, { is_active: false });
      // A deactivated user's valid token is refused.
      expect((await gw.fetch("/api/v1/auth/me", { headers: a.auth })).status).toBe(403);
      expect((await put(gw, `/api/v1/users/99999`, root, { full_name: "x" })).status).toBe(404);
    } finally {
      await gw.close();
    }
  });

  test("only a superuser deletes, never themselves; a user being deleted is deactivated first", async ({
    db,
  }) => {
    const { gw, a, b, root } = await cast(db.url);
    try {
      const del = (who: Session, id: number) =>
        gw.fetch(`/api/v1/users/${id}`, { method: "DELETE", headers: who.auth });
      expect((await del(a, b.id)).status).toBe(403);
      expect((await del(a, a.id)).status).toBe(403);
      const self = await problemOf(await del(root, root.id));
      expect(self.status).toBe(403);
      expect(self.type).toContain("application/problem+json");
      // vm-service is away here: the user's VMs cannot be deleted, so neither is the user, but
      // they are deactivated and their token stops working (user-deletion.int.test.ts: the rest).
      const away = await problemOf(await del(root, b.id));
      expect(away.status).toBe(503);
      expect((await gw.fetch("/api/v1/auth/me", { headers: b.auth })).status).toBe(403);
      expect((await del(root, 99999)).status).toBe(404);
    } finally {
      await gw.close();
    }
  });
});
