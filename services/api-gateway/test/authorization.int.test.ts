/**
 * The authorization matrix: every operation the OpenAPI document lists, asked by no one, by the owner
 * of what it names, by another user, and by a superuser. A new operation without a row fails the
 * test, so nothing reaches the API without a decision on who may call it.
 */
import { describe, expect, test } from "@mikrom/testkit";
import type { JsonResponse, RunningGateway, Session } from "./support/gateway.ts";
import { type OpenApiDocument, offlineApp } from "./support/openapi.ts";
import { world } from "./support/world.ts";

type Role = "anonymous" | "owner" | "other" | "superuser";
/** What a role gets: allowed (the request is served: no 401, 403 or 404), or refused with one of these. */
type Outcome = "allowed" | 401 | 403 | 404 | "403 or 404";

interface Ids {
  vm: string;
  pool: string;
  owner: number;
  victim: number;
}

interface Row {
  /** `METHOD /path` as the OpenAPI document names it. */
  readonly operation: string;
  readonly path: (ids: Ids) => string;
  readonly body?: unknown;
  readonly outcomes: Readonly<Record<Role, Outcome>>;
}

const PUBLIC: Record<Role, Outcome> = {
  anonymous: "allowed",
  owner: "allowed",
  other: "allowed",
  superuser: "allowed",
};
const SIGNED_IN: Record<Role, Outcome> = {
  anonymous: 401,
  owner: "allowed",
  other: "allowed",
  superuser: "allowed",
};
/** What belongs to the owner: another user cannot tell it from nothing. */
const OWNED: Record<Role, Outcome> = { anonymous: 401, owner: "allowed", other: 404, superuser: "allowed" };
/** A user's own account: another user is refused (403) or told there is none (404). */
const OWN_ACCOUNT: Record<Role, Outcome> = {
  anonymous: 401,
  owner: "allowed",
  other: "403 or 404",
  superuser: "allowed",
};
const SUPERUSER: Record<Role, Outcome> = { anonymous: 401, owner: 403, other: 403, superuser: "allowed" };

const vm =
  (suffix = "") =>
  (ids: Ids) =>
    `/api/v1/vms/${ids.vm}${suffix}`;
const pool =
  (suffix = "") =>
  (ids: Ids) =>
    `/api/v1/ippools/${ids.pool}${suffix}`;
const fixed = (path: string) => () => path;

/** In order: what changes or ends something comes after what reads it. */
const ROWS: readonly Row[] = [
  { operation: "GET /health", path: fixed("/health"), outcomes: PUBLIC },
  { operation: "GET /api/v1/health", path: fixed("/api/v1/health"), outcomes: PUBLIC },
  { operation: "GET /ready", path: fixed("/ready"), outcomes: PUBLIC },
  { operation: "GET /api/v1/health/ready", path: fixed("/api/v1/health/ready"), outcomes: PUBLIC },
  { operation: "GET /api/v1/auth/me", path: fixed("/api/v1/auth/me"), outcomes: SIGNED_IN },
  { operation: "GET /api/v1/auth/profile", path: fixed("/api/v1/auth/profile"), outcomes: SIGNED_IN },
  {
    operation: "POST /api/v1/auth/invites",
    path: fixed("/api/v1/auth/invites"),
    body: {},
    outcomes: SUPERUSER,
  },
  { operation: "GET /api/v1/users", path: fixed("/api/v1/users"), outcomes: SUPERUSER },
  { operation: "GET /api/v1/hosts", path: fixed("/api/v1/hosts"), outcomes: SUPERUSER },
  {
    operation: "GET /api/v1/users/{user_id}",
    path: (ids) => `/api/v1/users/${ids.owner}`,
    outcomes: OWN_ACCOUNT,
  },
  {
    operation: "PUT /api/v1/users/{user_id}",
    path: (ids) => `/api/v1/users/${ids.owner}`,
    body: { full_name: "Ada" },
    outcomes: OWN_ACCOUNT,
  },
  { operation: "GET /api/v1/vms", path: fixed("/api/v1/vms"), outcomes: SIGNED_IN },
  { operation: "GET /api/v1/vms/{vm_id}", path: vm(), outcomes: OWNED },
  { operation: "GET /api/v1/vms/{vm_id}/events", path: vm("/events"), outcomes: OWNED },
  { operation: "GET /api/v1/vms/{vm_id}/wait", path: vm("/wait?status=pending&timeout=1"), outcomes: OWNED },
  { operation: "GET /api/v1/events/vms", path: fixed("/api/v1/events/vms"), outcomes: SIGNED_IN },
  { operation: "PATCH /api/v1/vms/{vm_id}", path: vm(), body: { name: "renamed" }, outcomes: OWNED },
  { operation: "POST /api/v1/vms/{vm_id}/stop", path: vm("/stop"), outcomes: OWNED },
  { operation: "POST /api/v1/vms/{vm_id}/start", path: vm("/start"), outcomes: OWNED },
  { operation: "POST /api/v1/vms/{vm_id}/restart", path: vm("/restart"), outcomes: OWNED },
  {
    operation: "POST /api/v1/vms",
    path: fixed("/api/v1/vms"),
    body: { name: "matrix", vcpu_count: 1, memory_mb: 512 },
    outcomes: SIGNED_IN,
  },
  { operation: "POST /api/v1/vms/build", path: fixed("/api/v1/vms/build"), body: {}, outcomes: SIGNED_IN },
  { operation: "GET /api/v1/ippools", path: fixed("/api/v1/ippools"), outcomes: SUPERUSER },
  { operation: "GET /api/v1/ippools/stats", path: fixed("/api/v1/ippools/stats"), outcomes: SUPERUSER },
  {
    operation: "POST /api/v1/ippools/suggest-range",
    path: fixed("/api/v1/ippools/suggest-range"),
    body: { cidr: "10.9.0.0/24" },
    outcomes: SUPERUSER,
  },
  {
    operation: "POST /api/v1/ippools",
    path: fixed("/api/v1/ippools"),
    body: {
      name: "matrix2",
      cidr: "10.2.0.0/24",
      gateway: "10.2.0.1",
      start_ip: "10.2.0.10",
      end_ip: "10.2.0.20",
    },
    outcomes: SUPERUSER,
  },
  { operation: "GET /api/v1/ippools/{pool_id}", path: pool(), outcomes: SUPERUSER },
  { operation: "GET /api/v1/ippools/{pool_id}/stats", path: pool("/stats"), outcomes: SUPERUSER },
  {
    operation: "PATCH /api/v1/ippools/{pool_id}",
    path: pool(),
    body: { description: "x" },
    outcomes: SUPERUSER,
  },
  { operation: "GET /api/v1/audit", path: fixed("/api/v1/audit"), outcomes: SUPERUSER },
  { operation: "DELETE /api/v1/ippools/{pool_id}", path: pool(), outcomes: SUPERUSER },
  { operation: "DELETE /api/v1/vms/{vm_id}", path: vm(), outcomes: OWNED },
  {
    operation: "DELETE /api/v1/users/{user_id}",
    path: (ids) => `/api/v1/users/${ids.victim}`,
    // The owner and the other user are both someone else here: only a superuser deletes an account.
    outcomes: { anonymous: 401, owner: "403 or 404", other: "403 or 404", superuser: "allowed" },
  },
];

/** Public by design, with rows elsewhere: signing up and in, and signing out (which ends the session the matrix uses). */
const ELSEWHERE = new Set([
  "POST /api/v1/auth/register",
  "POST /api/v1/auth/login",
  "POST /api/v1/auth/login/json",
  "POST /api/v1/auth/refresh",
  "POST /api/v1/auth/logout",
]);

function meets(status: number, outcome: Outcome): boolean {
  // Allowed is past authorization: neither refused nor hidden, and never a 500. A 501 (the build
  // route) or a 503 (the audit service, which this world does not run) answers after the check.
  if (outcome === "allowed") return ![401, 403, 404, 500].includes(status);
  if (outcome === "403 or 404") return status === 403 || status === 404;
  return status === outcome;
}

async function ask(gw: RunningGateway, who: Session | null, row: Row, ids: Ids): Promise<number> {
  const method = row.operation.split(" ")[0] as string;
  const headers: Record<string, string> = who ? { ...who.auth } : {};
  if (row.body !== undefined) headers["Content-Type"] = "application/json";
  const res: JsonResponse = await gw.fetch(row.path(ids), {
    method,
    headers,
    ...(row.body !== undefined && { body: JSON.stringify(row.body) }),
  });
  // An event stream stays open: its status is what counts.
  await res.body?.cancel();
  return res.status;
}

describe("the authorization matrix", () => {
  test("has a row for every operation the API documents", async () => {
    const doc = (await (await offlineApp().request("/openapi.json")).json()) as OpenApiDocument;
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
    );
    const rows = new Set(ROWS.map((r) => r.operation));
    expect(documented.filter((op) => !rows.has(op) && !ELSEWHERE.has(op))).toEqual([]);
    expect([...rows].filter((op) => !documented.includes(op))).toEqual([]);
  });

  test("every operation × {anonymous, owner, other user, superuser} answers as its row says", {
    timeout: 120_000,
  }, async ({ db, nats }) => {
    const w = await world(db.url, nats, { commandTimeoutMs: 2_000, queryTimeoutMs: 2_000 });
    try {
      const victim = await w.gw.user("victim");
      const created = await w.gw.fetch("/api/v1/vms", {
        method: "POST",
        headers: { ...w.a.auth, "Content-Type": "application/json" },
        body: JSON.stringify({ name: "owned", vcpu_count: 1, memory_mb: 512 }),
      });
      expect(created.status).toBeLessThan(300);
      const madePool = await w.gw.fetch("/api/v1/ippools", {
        method: "POST",
        headers: { ...w.root.auth, "Content-Type": "application/json" },
        body: JSON.stringify({
          name: "matrix",
          cidr: "10.1.0.0/24",
          gateway: "10.1.0.1",
          start_ip: "10.1.0.10",
          end_ip: "10.1.0.20",
        }),
      });
      expect(madePool.status).toBe(201);
      const ids: Ids = {
        vm: ((await created.json()) as { vm_id: string }).vm_id,
        pool: ((await madePool.json()) as { id: string }).id,
        owner: w.a.id,
        victim: victim.id,
      };
      const who: Record<Role, Session | null> = {
        anonymous: null,
        other: w.b,
        owner: w.a,
        superuser: w.root,
      };
      const wrong: string[] = [];
      let asked = 0;
      for (const row of ROWS) {
        for (const role of ["anonymous", "other", "owner", "superuser"] as const) {
          const status = await ask(w.gw, who[role], row, ids);
          asked++;
          if (!meets(status, row.outcomes[role]))
            wrong.push(`${row.operation} as ${role}: ${status}, expected ${row.outcomes[role]}`);
        }
      }
      expect(wrong).toEqual([]);
      expect(asked).toBe(ROWS.length * 4);
    } finally {
      await w.close();
    }
  });
});
