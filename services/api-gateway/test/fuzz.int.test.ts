import { expect, test } from "@mikrom/testkit";
import fc from "fast-check";
import { world } from "./support/world.ts";

const TEMPLATES = [
  "/api/v1/auth/register",
  "/api/v1/auth/login",
  "/api/v1/auth/login/json",
  "/api/v1/auth/refresh",
  "/api/v1/auth/me",
  "/api/v1/users",
  "/api/v1/users/{id}",
  "/api/v1/vms",
  "/api/v1/vms/{id}",
  "/api/v1/vms/{id}/start",
  "/api/v1/vms/{id}/stop",
  "/api/v1/vms/{id}/restart",
  "/api/v1/vms/{id}/events",
  "/api/v1/vms/{id}/wait",
  "/api/v1/vms/build",
  "/api/v1/ippools",
  "/api/v1/ippools/{id}",
  "/api/v1/ippools/{id}/stats",
  "/api/v1/ippools/suggest-range",
  "/api/v1/events/vms",
  "/health",
  "/openapi.json",
];

const segment = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.constantFrom(
    "srv-0000abcd",
    "srv-XYZ",
    "0",
    "-1",
    "99999999999999999999",
    "1e3",
    "%00",
    "..",
    "pool-00000000",
    "null",
  ),
  fc.integer().map(String),
);

const path = fc.oneof(
  fc.constantFrom(
    "/api/v1/vms/%E0%A4%A",
    "/api/v1/users/%ZZ",
    "/%",
    "//api//v1/vms",
    "/api/v1/ippools/%C0%AF/stats",
  ),
  fc.tuple(fc.constantFrom(...TEMPLATES), segment).map(([t, s]) => t.replace("{id}", encodeURIComponent(s))),
  fc.array(segment, { maxLength: 5 }).map((parts) => `/${parts.map(encodeURIComponent).join("/")}`),
);
const query = fc.option(
  fc.dictionary(fc.constantFrom("page", "page_size", "status", "timeout", "token", "x"), segment, {
    maxKeys: 3,
  }),
  { nil: undefined },
);

const jsonValue = fc.oneof(
  fc.json({ maxDepth: 4 }),
  fc
    .record(
      {
        name: fc.oneof(fc.string(), fc.integer(), fc.constant(null)),
        email: fc.oneof(fc.emailAddress(), fc.string()),
        password: fc.oneof(fc.string({ maxLength: 120 }), fc.integer()),
        vcpu_count: fc.oneof(fc.integer(), fc.double(), fc.string()),
        memory_mb: fc.oneof(fc.integer(), fc.string(), fc.constant(null)),
        refresh_token: fc.string(),
        is_superuser: fc.oneof(fc.boolean(), fc.string()),
        cidr: fc.string(),
      },
      { requiredKeys: [] },
    )
    .map((o) => JSON.stringify(o)),
);
const body = fc.oneof(
  jsonValue,
  fc.string({ maxLength: 200 }),
  fc.constantFrom("{", "[", '{"name":', "\u0000", "null", "true", '"str"', "{}".repeat(1000), "a=b&c=d"),
);
const contentType = fc.constantFrom(
  "application/json",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=zzz",
  "text/plain",
  "application/json; charset=utf-8",
  "",
);
const headerText = fc.string({ maxLength: 60, unit: fc.constantFrom(..."abcXYZ019 -_.:;/=+%") });

/** 2,000 in the suite; `npm run fuzz` asks for 10,000 (MIKROM_FUZZ_RUNS). */
const RUNS = Number(process.env.MIKROM_FUZZ_RUNS ?? 2_000);

test("thousands of malformed requests: never a 5xx, every error is problem+json", {
  timeout: 180_000 + RUNS * 60,
}, async ({ db, nats }) => {
  const statuses = new Map<number, number>();
  const w = await world(db.url, nats, { commandTimeoutMs: 500, queryTimeoutMs: 500 });
  try {
    const auths = [
      {},
      w.a.auth,
      w.root.auth,
      { Authorization: `Bearer ${w.a.refresh}` },
      { Authorization: "Bearer " },
      { Authorization: `Bearer ${w.a.token}x` },
    ];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("GET", "POST", "PUT", "PATCH", "DELETE"),
        path,
        query,
        body,
        contentType,
        fc.nat({ max: auths.length - 1 }),
        fc.record({
          idem: fc.option(headerText, { nil: undefined }),
          lastId: fc.option(headerText, { nil: undefined }),
        }),
        async (method, p, q, b, ct, authIndex, extra) => {
          const headers: Record<string, string> = { ...auths[authIndex] };
          if (ct) headers["Content-Type"] = ct;
          if (extra.idem !== undefined) headers["Idempotency-Key"] = extra.idem;
          if (extra.lastId !== undefined) headers["Last-Event-ID"] = extra.lastId;
          const search = q ? `?${new URLSearchParams(q)}` : "";
          const res = await fetch(`${w.gw.url}${p}${search}`, {
            method,
            headers,
            ...(method !== "GET" && { body: b }),
          });
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          if (res.headers.get("content-type")?.includes("text/event-stream")) {
            await res.body?.cancel();
            expect(res.status).toBe(200);
            return;
          }
          const text = await res.text();
          const notImplemented = res.status === 501 && p === "/api/v1/vms/build";
          if (!notImplemented) expect(res.status, `${method} ${p}${search} -> ${text}`).toBeLessThan(500);
          if (res.status >= 400) {
            expect(res.headers.get("content-type")).toContain("application/problem+json");
            const problem = JSON.parse(text);
            expect(typeof problem.detail).toBe("string");
            expect(problem.error).toBe(problem.detail);
            expect(problem.status).toBe(res.status);
          }
        },
      ),
      { numRuns: RUNS },
    );
    const total = [...statuses.values()].reduce((a, b) => a + b, 0);
    const spread = [...statuses].sort(([a], [b]) => a - b).map(([status, n]) => `${status}: ${n}`);
    process.stdout.write(`fuzz: ${total} requests; ${spread.join(", ")}\n`);
    expect([...statuses.keys()].filter((s) => s >= 500 && s !== 501)).toEqual([]);
  } finally {
    await w.close();
  }
});
