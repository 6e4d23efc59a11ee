import { describe, expect, test } from "@mikrom/testkit";
import type { GatewayDeps } from "../src/app.ts";
import type { Json, JsonResponse, Session } from "./support/gateway.ts";
import { type World, world } from "./support/world.ts";

const PASSWORD = "correct horse battery";
const GRAFANA = "https://grafana.example";

/** A browser as far as the console can tell: a cookie jar, HTML navigations, no redirects followed. */
class Browser {
  readonly cookies = new Map<string, string>();
  readonly #base: string;

  constructor(base: string) {
    this.#base = base;
  }

  async fetch(path: string, init: RequestInit & { accept?: string } = {}): Promise<JsonResponse> {
    const headers = new Headers(init.headers);
    headers.set("accept", init.accept ?? "text/html,application/xhtml+xml");
    if (this.cookies.size > 0)
      headers.set("cookie", [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; "));
    const res = await fetch(`${this.#base}${path}`, { ...init, headers, redirect: "manual" });
    for (const line of res.headers.getSetCookie()) {
      const [pair = ""] = line.split(";");
      const eq = pair.indexOf("=");
      const [name, value] = [pair.slice(0, eq), pair.slice(eq + 1)];
      if (value === "" || /max-age=0/i.test(line)) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return res;
  }

  /** The page's CSRF token, as its forms carry it. */
  async csrf(path = "/login"): Promise<string> {
    const html = await (await this.fetch(path)).text();
    const token = /name="_csrf" value="([^"]+)"/.exec(html)?.[1];
    if (!token) throw new Error(`no CSRF token on ${path}`);
    return token;
  }

  post(path: string, fields: Record<string, string>, init: RequestInit & { accept?: string } = {}) {
    return this.fetch(path, { ...init, method: "POST", body: new URLSearchParams(fields) });
  }

  async login(email: string, password = PASSWORD): Promise<JsonResponse> {
    const _csrf = await this.csrf();
    return this.post("/login", { _csrf, username: email, password, next: "/" });
  }
}

async function consoleWorld(
  dbUrl: string,
  nats: Parameters<typeof world>[1],
  config: Partial<GatewayDeps["config"]> = {},
): Promise<World> {
  return world(dbUrl, nats, { grafanaUrl: GRAFANA, ...config });
}

async function createVm(w: World, who: Session, name: string): Promise<string> {
  const res = await w.gw.post("/api/v1/vms", { name }, who.auth);
  expect(res.status, await res.clone().text()).toBe(201);
  return (await res.json()).vm_id;
}

describe("web console", () => {
  test("logging in keeps the API's tokens in HttpOnly, SameSite=Strict cookies; the list shows the user's own VMs only", async ({
    db,
    nats,
  }) => {
    const w = await consoleWorld(db.url, nats);
    try {
      await createVm(w, w.a, "alpha-1");
      await createVm(w, w.b, "bravo-1");
      const browser = new Browser(w.gw.url);

      const redirected = await browser.fetch("/");
      expect(redirected.status).toBe(303);
      expect(redirected.headers.get("location")).toBe("/login");

      const login = await browser.login(w.a.email);
      expect(login.status).toBe(303);
      expect(login.headers.get("location")).toBe("/");
      const cookies = login.headers.getSetCookie().filter((c) => /^mikrom_(access|refresh)=/.test(c));
      expect(cookies).toHaveLength(2);
      for (const cookie of cookies) {
        expect(cookie).toMatch(/HttpOnly/i);
        expect(cookie).toMatch(/SameSite=Strict/i);
        expect(cookie).toMatch(/Path=\//);
      }

      const page = await browser.fetch("/");
      expect(page.status).toBe(200);
      expect(page.headers.get("content-type")).toContain("text/html");
      expect(page.headers.get("content-security-policy")).toContain("script-src 'self'");
      expect(page.headers.get("cache-control")).toBe("no-store");
      const html = await page.text();
      expect(html).toContain("alpha-1");
      expect(html).not.toContain("bravo-1");
      expect(html).toMatch(/^<!DOCTYPE html><html lang="en">/);

      const bravo = [...w.vmService.vms.values()].find((v) => v.name === "bravo-1")!;
      const theirs = await browser.fetch(`/vms/${bravo.vmId}`);
      expect(theirs.status).toBe(404);
      expect(await theirs.text()).toContain("VM not found");
    } finally {
      await w.close();
    }
  });

  test("a wrong password shows the API's reason on the login form", async ({ db, nats }) => {
    const w = await consoleWorld(db.url, nats);
    try {
      const browser = new Browser(w.gw.url);
      const res = await browser.login(w.a.email, "not the password");
      expect(res.status).toBe(200);
      expect(await res.text()).toContain("Incorrect username or password");
      expect(browser.cookies.has("mikrom_access")).toBe(false);
    } finally {
      await w.close();
    }
  });

  test("a form without this browser's CSRF token, or sent from another site, is refused", async ({
    db,
    nats,
  }) => {
    const w = await consoleWorld(db.url, nats);
    try {
      const browser = new Browser(w.gw.url);
      await browser.login(w.a.email);
      const _csrf = await browser.csrf("/");
      const fields = { name: "sneaky", vcpu_count: "1", memory_mb: "256" };

      expect((await browser.post("/vms", fields)).status).toBe(403);
      expect((await browser.post("/vms", { ...fields, _csrf: `${_csrf}x` })).status).toBe(403);
      const crossSite = await browser.post(
        "/vms",
        { ...fields, _csrf },
        { headers: { "sec-fetch-site": "cross-site" } },
      );
      expect(crossSite.status).toBe(403);
      const otherOrigin = await browser.post(
        "/vms",
        { ...fields, _csrf },
        { headers: { origin: "https://evil.example" } },
      );
      expect(otherOrigin.status).toBe(403);
      // Another browser's token does not fit this browser's cookie.
      const other = new Browser(w.gw.url);
      await other.login(w.b.email);
      expect((await other.post("/vms", { ...fields, _csrf })).status).toBe(403);
      expect([...w.vmService.vms.values()].some((v) => v.name === "sneaky")).toBe(false);

      const created = await browser.post("/vms", { ...fields, _csrf });
      expect(created.status).toBe(303);
      expect([...w.vmService.vms.values()].some((v) => v.name === "sneaky")).toBe(true);
    } finally {
      await w.close();
    }
  });

  test("the script's operations answer JSON: a create with its idempotency key, a refused stop with the API's reason", async ({
    db,
    nats,
  }) => {
    const w = await consoleWorld(db.url, nats);
    try {
      const browser = new Browser(w.gw.url);
      await browser.login(w.a.email);
      const _csrf = await browser.csrf("/");
      const json = { accept: "application/json" };
      const form = { _csrf, name: "web-1", vcpu_count: "2", memory_mb: "256", idempotency_key: "k-1" };

      const first = await browser.post("/vms", form, json);
      expect(first.status).toBe(200);
      const body: Json = await first.json();
      expect(body).toMatchObject({ ok: true, status: "pending" });
      expect(body.next_idempotency_key).toMatch(/^[0-9a-f-]{36}$/);
      // The same form sent again (a double click) reaches the same VM: one create.
      const again: Json = await (await browser.post("/vms", form, json)).json();
      expect(again.vm_id).toBe(body.vm_id);
      expect([...w.vmService.vms.values()].filter((v) => v.name === "web-1")).toHaveLength(1);
      expect(w.vmService.vms.get(body.vm_id)).toMatchObject({ vcpuCount: 2, memoryMb: 256 });

      const stop = await browser.post(`/vms/${body.vm_id}/stop`, { _csrf }, json);
      expect(stop.status).toBe(409);
      expect(stop.headers.get("content-type")).toContain("application/problem+json");
      expect((await stop.json()).detail).toContain("VM cannot stop from status pending");

      // Without the script: back to the page, with the reason as its message.
      const plain = await browser.post(`/vms/${body.vm_id}/stop`, { _csrf, back: `/vms/${body.vm_id}` });
      expect(plain.status).toBe(303);
      expect(plain.headers.get("location")).toBe(`/vms/${body.vm_id}`);
      expect(await (await browser.fetch(`/vms/${body.vm_id}`)).text()).toContain(
        "VM cannot stop from status pending",
      );

      // A `back` to another site is not followed.
      const away = await browser.post(`/vms/${body.vm_id}/delete`, { _csrf, back: "//evil.example/" });
      expect(away.headers.get("location")).toBe("/");
      expect(w.vmService.vms.get(body.vm_id)?.status).toBe("deleting");
    } finally {
      await w.close();
    }
  });

  test("a VM's page shows its details and its history, trace ids linked to Grafana", async ({ db, nats }) => {
    const w = await consoleWorld(db.url, nats);
    try {
      const vmId = await createVm(w, w.a, "web-2");
      await w.vmService.transition(vmId, "VmRunning", "running", {
        hostId: "host-7",
        host: "host-7",
        ipAddress: "172.16.0.9",
      });
      const browser = new Browser(w.gw.url);
      await browser.login(w.a.email);
      const html = await (await browser.fetch(`/vms/${vmId}`)).text();
      expect(html).toContain("172.16.0.9");
      expect(html).toContain("host-7");
      expect(html).toContain("Running on host-7 at 172.16.0.9");
      expect(html).toContain(`data-live="/console/events" data-vm-id="${vmId}"`);
      const link = /href="(https:\/\/grafana\.example\/explore\?[^"]+)"/.exec(html)?.[1];
      expect(link).toBeDefined();
      const panes = JSON.parse(new URL(link!.replaceAll("&amp;", "&")).searchParams.get("panes")!);
      expect(panes.trace.queries[0].query).toBe("0af7651916cd43dd8448eb211c80319c");
    } finally {
      await w.close();
    }
  });

  test("the admin pages are the API's: a user gets its 403, a superuser the users and pools", async ({
    db,
    nats,
  }) => {
    const w = await consoleWorld(db.url, nats);
    try {
      const user = new Browser(w.gw.url);
      await user.login(w.a.email);
      const refused = await user.fetch("/users");
      expect(refused.status).toBe(403);
      expect(await refused.text()).toContain("enough privileges");
      expect(await (await user.fetch("/")).text()).not.toContain('href="/users"');

      const root = new Browser(w.gw.url);
      await root.login(w.root.email);
      const users = await (await root.fetch("/users")).text();
      expect(users).toContain(w.b.email);
      const pools = await root.fetch("/ippools");
      expect(pools.status).toBe(200);
      expect(await pools.text()).toContain("<meter");
    } finally {
      await w.close();
    }
  });

  test("the event stream is the API's, for the session's user only", async ({ db, nats }) => {
    const w = await consoleWorld(db.url, nats);
    try {
      const browser = new Browser(w.gw.url);
      await browser.login(w.a.email);
      const abort = new AbortController();
      const res = await browser.fetch("/console/events", {
        accept: "text/event-stream",
        signal: abort.signal,
      });
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toContain("text/event-stream");
      const theirs = await createVm(w, w.b, "bravo-2");
      const mine = await createVm(w, w.a, "alpha-2");
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      let text = "";
      while (!text.includes(mine)) {
        const { value, done } = await reader.read();
        if (done) break;
        text += value;
      }
      abort.abort();
      expect(text).toContain(`"vm_id":"${mine}"`);
      expect(text).not.toContain(theirs);

      const anonymous = await new Browser(w.gw.url).fetch("/console/events", { accept: "text/event-stream" });
      expect(anonymous.status).toBe(401);
    } finally {
      await w.close();
    }
  });

  test("an access token about to expire is renewed from the refresh cookie, once for requests that arrive together", async ({
    db,
    nats,
  }) => {
    const w = await consoleWorld(db.url, nats);
    try {
      const browser = new Browser(w.gw.url);
      await browser.login(w.a.email);
      const spent = browser.cookies.get("mikrom_access")!;
      browser.cookies.delete("mikrom_access");
      const pages = await Promise.all([browser.fetch("/"), browser.fetch("/"), browser.fetch("/")]);
      expect(pages.map((p) => p.status)).toEqual([200, 200, 200]);
      const renewed = browser.cookies.get("mikrom_access");
      expect(renewed).toBeDefined();
      expect(renewed).not.toBe(spent);
      // Had the refresh token been presented twice, the API would have revoked every token.
      browser.cookies.delete("mikrom_access");
      expect((await browser.fetch("/")).status).toBe(200);
    } finally {
      await w.close();
    }
  });

  test("logging out ends the session", async ({ db, nats }) => {
    const w = await consoleWorld(db.url, nats);
    try {
      const browser = new Browser(w.gw.url);
      await browser.login(w.a.email);
      const _csrf = await browser.csrf("/");
      const out = await browser.post("/logout", { _csrf });
      expect(out.headers.get("location")).toBe("/login");
      expect(browser.cookies.has("mikrom_access")).toBe(false);
      expect(browser.cookies.has("mikrom_refresh")).toBe(false);
      expect((await browser.fetch("/")).status).toBe(303);
    } finally {
      await w.close();
    }
  });

  test("assets are served by the gateway, cached by their content hash", async ({ db, nats }) => {
    const w = await consoleWorld(db.url, nats);
    try {
      const html = await (await new Browser(w.gw.url).fetch("/login")).text();
      for (const path of [
        /href="(\/console\/assets\/console\.css\?v=[0-9a-f]+)"/,
        /src="(\/console\/assets\/console\.js\?v=[0-9a-f]+)"/,
      ]) {
        const url = path.exec(html)?.[1];
        expect(url).toBeDefined();
        const res = await fetch(`${w.gw.url}${url}`);
        expect(res.status).toBe(200);
        expect(res.headers.get("cache-control")).toContain("immutable");
      }
      expect((await fetch(`${w.gw.url}/console/assets/nope.js`)).status).toBe(404);
    } finally {
      await w.close();
    }
  });
});
