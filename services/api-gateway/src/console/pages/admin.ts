import type { Context, Hono } from "hono";
import type { AppEnv } from "../../http/env.ts";
import type { AllPoolStats, AuditEntry, Host, Page, Pool, Vm } from "../api-types.ts";
import { renderPage } from "../html.ts";
import { allocationsOf } from "../pools.ts";
import { type AuditFilters, auditPage } from "../views/audit.ts";
import { hostsPage } from "../views/hosts.ts";
import { ippoolsPage } from "../views/ippools.ts";
import { layout } from "../views/layout.ts";
import { usersPage } from "../views/users.ts";
import { type ConsoleDeps, pageParam, shellOf, signedIn } from "./context.ts";

/** The API pages at most 100 items. */
const MAX_PAGE = 100;
/** VMs read for the pools' allocations. */
const MAX_VMS = 500;
const AUDIT_PAGE = 25;

const query = (params: Record<string, string | number | undefined>): string =>
  new URLSearchParams(
    Object.entries(params).flatMap(([k, v]): [string, string][] =>
      v === undefined || v === "" ? [] : [[k, String(v)]],
    ),
  ).toString();

/** `datetime-local` (no zone) read as UTC, as the form says; anything else is passed on for the API to judge. */
function utc(value: string | undefined): string | undefined {
  if (!value) return undefined;
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$/.test(value)) return `${value}:00Z`;
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?$/.test(value)) return `${value}Z`;
  return value;
}

/**
 * The superuser's pages. Each calls the API routes that hold its data; a user who is not a superuser
 * gets the API's own 403. The console reads what the API exposes and adds no route of its own.
 */
export function adminPages(app: Hono<AppEnv>, deps: ConsoleDeps): void {
  const { api } = deps;

  /** Every VM, up to MAX_VMS (a superuser's list is everyone's). */
  async function allVms(c: Context, token: string): Promise<{ items: Vm[]; total: number }> {
    const first = await api.get<Page<Vm>>(c, `/api/v1/vms?page=1&page_size=${MAX_PAGE}`, token);
    const pages = Math.min(first.total_pages, MAX_VMS / MAX_PAGE);
    const rest = await Promise.all(
      Array.from({ length: Math.max(0, pages - 1) }, (_, i) =>
        api.get<Page<Vm>>(c, `/api/v1/vms?page=${i + 2}&page_size=${MAX_PAGE}`, token),
      ),
    );
    return { items: [first, ...rest].flatMap((p) => p.items), total: first.total };
  }

  app.get("/hosts", async (c) => {
    const { token, me } = await signedIn(c, deps);
    const hosts = await api.get<{ items: Host[] }>(c, "/api/v1/hosts", token);
    const shell = shellOf(c, deps, "Hosts", me, { section: "hosts" });
    return renderPage(c, layout(shell, hostsPage(hosts.items, Date.now())));
  });

  app.get("/ippools", async (c) => {
    const { token, me } = await signedIn(c, deps);
    const [pools, stats, vms] = await Promise.all([
      api.get<Page<Pool>>(c, `/api/v1/ippools?page=1&page_size=${MAX_PAGE}`, token),
      api.get<AllPoolStats>(c, "/api/v1/ippools/stats", token),
      allVms(c, token),
    ]);
    const cards = pools.items.map((pool) => ({
      pool,
      stats: stats.pools.find((s) => s.pool_id === pool.id),
      allocations: allocationsOf(pool, vms.items),
    }));
    const shell = shellOf(c, deps, "IP pools", me, { section: "ippools" });
    return renderPage(c, layout(shell, ippoolsPage(cards, vms.items.length, vms.total)));
  });

  app.get("/users", async (c) => {
    const { token, me } = await signedIn(c, deps);
    const page = pageParam(c.req.query("page"));
    const users = await api.get<Page<typeof me>>(
      c,
      `/api/v1/users?page=${page}&page_size=${AUDIT_PAGE}`,
      token,
    );
    const shell = shellOf(c, deps, "Users", me, { section: "users" });
    return renderPage(c, layout(shell, usersPage(users)));
  });

  app.get("/audit", async (c) => {
    const { token, me } = await signedIn(c, deps);
    const filters: AuditFilters = {
      type: c.req.query("type")?.trim(),
      vm_id: c.req.query("vm_id")?.trim(),
      user_id: c.req.query("user_id")?.trim(),
      from: c.req.query("from"),
      to: c.req.query("to"),
    };
    const apiFilters = { ...filters, from: utc(filters.from), to: utc(filters.to) };
    const path = (page: number) => `/api/v1/audit?${query({ ...apiFilters, page, page_size: AUDIT_PAGE })}`;
    // Without a page asked for, the newest: the API's last page.
    let entries = await api.get<Page<AuditEntry>>(c, path(pageParam(c.req.query("page"))), token);
    if (c.req.query("page") === undefined && entries.total_pages > 1)
      entries = await api.get<Page<AuditEntry>>(c, path(entries.total_pages), token);
    const href = (page: number) => `/audit?${query({ ...filters, page })}`;
    const shell = shellOf(c, deps, "Audit log", me, { section: "audit" });
    return renderPage(c, layout(shell, auditPage(entries, filters, href, deps.grafanaUrl)));
  });
}
