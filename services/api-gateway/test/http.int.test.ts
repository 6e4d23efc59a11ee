import { connect } from "node:net";
import { describe, expect, test } from "@mikrom/testkit";
import pg from "pg";
import { problemOf, startGateway } from "./support/gateway.ts";

describe("rate limiting", () => {
  test("past the per-IP limit requests are 429 with Retry-After, and another IP is still served", async ({
    db,
  }) => {
    const gw = await startGateway(db.url, {
      config: { rateLimit: { windowMs: 60_000, perIp: 5, perUser: 1000, authPerIp: 1000 } },
    });
    try {
      const from = (ip: string) => gw.fetch("/health", { headers: { "X-Forwarded-For": ip } });
      const statuses = [];
      for (let i = 0; i < 7; i++) statuses.push((await from("10.0.0.1")).status);
      expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429]);
      const limited = await from("10.0.0.1");
      expect(Number(limited.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      const p = await problemOf(limited);
      expect(p.type).toContain("application/problem+json");
      expect(p.body.error).toBe(p.body.detail);
      expect((await from("10.0.0.2")).status).toBe(200);
    } finally {
      await gw.close();
    }
  });

  test("past the per-user limit a user is 429 from any IP while another user is served", async ({ db }) => {
    const gw = await startGateway(db.url, {
      config: { rateLimit: { windowMs: 60_000, perIp: 1000, perUser: 3, authPerIp: 1000 } },
    });
    try {
      const [a, b] = await Promise.all([gw.user("a"), gw.user("b")]);
      const me = (auth: Record<string, string>, ip: string) =>
        gw.fetch("/api/v1/auth/me", { headers: { ...auth, "X-Forwarded-For": ip } });
      const statuses = [];
      for (let i = 0; i < 4; i++) statuses.push((await me(a.auth, `10.0.1.${i}`)).status);
      expect(statuses).toEqual([200, 200, 200, 429]);
      expect((await me(a.auth, "10.0.1.99")).headers.get("retry-after")).toBeTruthy();
      expect((await me(b.auth, "10.0.1.0")).status).toBe(200);
    } finally {
      await gw.close();
    }
  });

  test("a signed-in user counts against the user, not the address: the address's anonymous clients keep their points, and a forged token is anonymous", async ({
    db,
  }) => {
    const gw = await startGateway(db.url, {
      config: { rateLimit: { windowMs: 60_000, perIp: 3, perUser: 1000, authPerIp: 1000 } },
    });
    try {
      const a = await gw.user("a");
      const from = (ip: string, headers: Record<string, string> = {}) =>
        gw.fetch("/api/v1/auth/me", { headers: { ...headers, "X-Forwarded-For": ip } });
      const signedIn = [];
      for (let i = 0; i < 5; i++) signedIn.push((await from("10.0.2.1", a.auth)).status);
      expect(signedIn).toEqual([200, 200, 200, 200, 200]);
      // The address's three points are untouched by the user's five requests.
      const forged = { Authorization: `${a.auth.Authorization}x` };
      const anonymous = [];
      for (let i = 0; i < 4; i++) anonymous.push((await from("10.0.2.1", i % 2 ? forged : {})).status);
      expect(anonymous).toEqual([401, 401, 401, 429]);
      expect((await from("10.0.2.1", a.auth)).status).toBe(200);
    } finally {
      await gw.close();
    }
  });
});

test("credential routes have their own, tighter per-IP limit", async ({ db }) => {
  const gw = await startGateway(db.url, {
    config: { rateLimit: { windowMs: 60_000, perIp: 1000, perUser: 1000, authPerIp: 3 } },
  });
  try {
    const login = () => gw.post("/api/v1/auth/login", { email: "nobody@example.com", password: "guessing" });
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await login()).status);
    expect(statuses).toEqual([401, 401, 401, 429]);
    expect((await gw.fetch("/health")).status).toBe(200);
  } finally {
    await gw.close();
  }
});

describe("idempotency keys", () => {
  test("the same key and body replays the first answer; another body with the key is a 422", async ({
    db,
  }) => {
    // The offline backend: the create is recorded and answered 202, to be sent when NATS is back.
    const gw = await startGateway(db.url);
    try {
      const a = await gw.user("a");
      const key = { ...a.auth, "Idempotency-Key": "create-once" };
      const first = await gw.post("/api/v1/vms", { name: "once" }, key);
      expect(first.status).toBe(202);
      const replay = await gw.post("/api/v1/vms", { name: "once" }, key);
      expect(replay.status).toBe(202);
      expect(replay.headers.get("idempotent-replayed")).toBe("true");
      expect(await replay.json()).toEqual(await first.json());
      const other = await problemOf(await gw.post("/api/v1/vms", { name: "other" }, key));
      expect(other.status).toBe(422);
      expect(
        (await gw.post("/api/v1/vms", { name: "once" }, { ...a.auth, "Idempotency-Key": "" })).status,
      ).toBe(422);
    } finally {
      await gw.close();
    }
  });

  test("answers that hold tokens are never stored: a key on an auth route changes nothing", async ({
    db,
  }) => {
    const gw = await startGateway(db.url);
    try {
      const body = { email: "idem@example.com", password: "correct horse battery" };
      const key = { "Idempotency-Key": "register-once" };
      expect((await gw.post("/api/v1/auth/register", body, key)).status).toBe(201);
      // A real second attempt, not a replay of the first answer and its tokens: the email is taken.
      const again = await gw.post("/api/v1/auth/register", body, key);
      expect(again.status).toBe(409);
      expect(again.headers.get("idempotent-replayed")).toBeNull();
      const login = await gw.post(
        "/api/v1/auth/login/json",
        { username: body.email, password: body.password },
        key,
      );
      expect(login.status).toBe(200);
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      try {
        const { rows } = await client.query("SELECT count(*)::int AS n FROM idempotency_keys");
        expect(rows[0].n).toBe(0);
      } finally {
        await client.end();
      }
    } finally {
      await gw.close();
    }
  });
});

/**
 * Sends `head` and `body` on a raw socket (leaving the declared body unfinished), reads the answer
 * as its Content-Length says, and tells who ended the connection within 3 s.
 */
function rawExchange(
  url: string,
  head: string,
  body: Uint8Array,
): Promise<{ head: string; body: string; ended: "by the server" | "not in time" }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let received = Buffer.alloc(0);
    const timer = setTimeout(() => finish("not in time"), 3_000);
    function finish(ended: "by the server" | "not in time"): void {
      clearTimeout(timer);
      socket.destroy();
      const text = received.toString("utf8");
      const split = text.indexOf("\r\n\r\n");
      if (split < 0) {
        reject(new Error(`no answer: ${JSON.stringify(text)}`));
        return;
      }
      const length = Number(/^content-length: *(\d+)$/im.exec(text.slice(0, split))?.[1] ?? -1);
      resolve({ head: text.slice(0, split), body: text.slice(split + 4, split + 4 + length), ended });
    }
    socket.on("data", (chunk) => {
      received = Buffer.concat([received, chunk]);
    });
    socket.on("end", () => finish("by the server"));
    // Writing into a connection the server has ended is the client's EPIPE, not the answer's fault.
    socket.on("error", () => {});
    socket.write(head);
    socket.write(body);
  });
}

describe("edges of HTTP", () => {
  test("a body over the limit is 413 problem+json", async ({ db }) => {
    const gw = await startGateway(db.url, { config: { bodyLimitBytes: 1024 } });
    try {
      const p = await problemOf(
        await gw.post("/api/v1/auth/register", { email: "a@b.io", password: "x".repeat(5000) }),
      );
      expect(p.status).toBe(413);
      expect(p.type).toContain("application/problem+json");
    } finally {
      await gw.close();
    }
  });

  test("a 413 closes the connection (Connection: close): an upload still going gets the answer, not a reset", async ({
    db,
  }) => {
    const gw = await startGateway(db.url, { config: { bodyLimitBytes: 1024 } });
    try {
      const small = await gw.post("/api/v1/auth/register", { email: "a@b.io", password: "x".repeat(5000) });
      expect(small.status).toBe(413);
      expect(small.headers.get("connection")).toBe("close");
      await small.body?.cancel();

      // 16 MiB sent over more than a second: the server has answered long before the client is done.
      const chunk = new Uint8Array(64 * 1024).fill(0x61);
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (sent++ === 256) return controller.close();
          await new Promise((r) => setTimeout(r, 5));
          controller.enqueue(chunk);
        },
      });
      const big = await gw.fetch("/api/v1/auth/register", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body,
        duplex: "half",
      } as RequestInit);
      expect(big.status).toBe(413);
      expect(big.headers.get("connection")).toBe("close");
      expect((await problemOf(big)).body.detail).toMatch(/larger than 1024 bytes/);

      // On the wire: the whole answer arrives, then the server ends the connection itself.
      const {
        head,
        body: text,
        ended,
      } = await rawExchange(
        gw.url,
        `POST /api/v1/auth/register HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: 4000000\r\n\r\n`,
        new Uint8Array(256 * 1024).fill(0x61),
      );
      expect(head).toMatch(/^HTTP\/1\.1 413 /);
      expect(head).toMatch(/^connection: close$/im);
      expect(head).not.toMatch(/keep-alive/i);
      expect(JSON.parse(text).status).toBe(413);
      expect(ended).toBe("by the server");
    } finally {
      await gw.close();
    }
  });

  test("a body without a declared length (chunked) is counted as it comes: under the limit it is read whole", async ({
    db,
  }) => {
    const gw = await startGateway(db.url, { config: { bodyLimitBytes: 1024 } });
    try {
      const json = new TextEncoder().encode(
        JSON.stringify({ email: "chunked@example.com", password: "correct horse battery" }),
      );
      const pieces = [json.slice(0, 10), json.slice(10)];
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          const piece = pieces.shift();
          if (piece) controller.enqueue(piece);
          else controller.close();
        },
      });
      const res = await gw.fetch("/api/v1/auth/register", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body,
        duplex: "half",
      } as RequestInit);
      expect(res.status).toBe(201);
      expect((await res.json()).email).toBe("chunked@example.com");
    } finally {
      await gw.close();
    }
  });

  test("CORS answers preflights for configured origins only", async ({ db }) => {
    const gw = await startGateway(db.url);
    try {
      const preflight = (origin: string) =>
        gw.fetch("/api/v1/vms", {
          method: "OPTIONS",
          headers: {
            Origin: origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
          },
        });
      const ok = await preflight("https://app.example");
      expect(ok.status).toBe(204);
      expect(ok.headers.get("access-control-allow-origin")).toBe("https://app.example");
      expect(ok.headers.get("access-control-allow-headers")?.toLowerCase()).toContain("idempotency-key");
      const other = await preflight("https://evil.example");
      expect(other.headers.get("access-control-allow-origin")).toBeNull();
    } finally {
      await gw.close();
    }
  });

  test("responses carry security headers; unknown routes are 404 problem+json", async ({ db }) => {
    const gw = await startGateway(db.url);
    try {
      const res = await gw.fetch("/nowhere");
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      expect(res.headers.get("x-frame-options")).toBe("SAMEORIGIN");
      expect(res.headers.get("strict-transport-security")).toContain("max-age=");
      expect(res.headers.get("content-security-policy")).toContain("default-src 'none'");
      const p = await problemOf(res);
      expect(p.status).toBe(404);
      expect(p.type).toContain("application/problem+json");
      expect(p.body.error).toBe(p.body.detail);
    } finally {
      await gw.close();
    }
  });

  test("the OpenAPI 3.1 document lists every route of the contract and /docs serves a page for it", async ({
    db,
  }) => {
    const gw = await startGateway(db.url);
    try {
      const doc = await (await gw.fetch("/openapi.json")).json();
      expect(doc.openapi).toBe("3.1.0");
      const ops = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(
        ([path, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`),
      );
      for (const op of [
        "POST /api/v1/auth/register",
        "POST /api/v1/auth/login",
        "POST /api/v1/auth/login/json",
        "POST /api/v1/auth/refresh",
        "GET /api/v1/auth/me",
        "GET /api/v1/users",
        "GET /api/v1/users/{user_id}",
        "PUT /api/v1/users/{user_id}",
        "DELETE /api/v1/users/{user_id}",
        "POST /api/v1/vms",
        "GET /api/v1/vms",
        "GET /api/v1/vms/{vm_id}",
        "PATCH /api/v1/vms/{vm_id}",
        "DELETE /api/v1/vms/{vm_id}",
        "POST /api/v1/vms/{vm_id}/start",
        "POST /api/v1/vms/{vm_id}/stop",
        "POST /api/v1/vms/{vm_id}/restart",
        "GET /api/v1/vms/{vm_id}/events",
        "GET /api/v1/vms/{vm_id}/wait",
        "POST /api/v1/ippools",
        "GET /api/v1/ippools",
        "GET /api/v1/ippools/{pool_id}",
        "PATCH /api/v1/ippools/{pool_id}",
        "DELETE /api/v1/ippools/{pool_id}",
        "GET /api/v1/ippools/stats",
        "GET /api/v1/ippools/{pool_id}/stats",
        "POST /api/v1/ippools/suggest-range",
        "GET /api/v1/events/vms",
        "GET /health",
        "GET /api/v1/health",
      ]) {
        expect(ops).toContain(op);
      }
      const create = doc.paths["/api/v1/vms"].post;
      const schema = create.requestBody.content["application/json"].schema;
      expect(schema.properties.vcpu_count).toMatchObject({ minimum: 1, maximum: 32, default: 1 });
      expect(schema.properties.name.pattern).toBe("^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$");
      expect(schema.required).toEqual(["name"]);
      const page = await gw.fetch("/docs");
      expect(page.headers.get("content-type")).toContain("text/html");
      expect(await page.text()).toContain("swagger-ui");
      expect(await (await gw.fetch("/docs/init.js")).text()).toContain("/openapi.json");
      // The page's assets come from the gateway itself, not from the internet.
      for (const asset of ["/docs/assets/swagger-ui.css", "/docs/assets/swagger-ui-bundle.js"]) {
        const res = await gw.fetch(asset);
        expect(res.status, asset).toBe(200);
        expect((await res.arrayBuffer()).byteLength).toBeGreaterThan(10_000);
      }
      expect((await gw.fetch("/docs/assets/package.json")).status).toBe(404);
    } finally {
      await gw.close();
    }
  });
});
