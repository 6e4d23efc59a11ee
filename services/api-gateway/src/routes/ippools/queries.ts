import { createRoute } from "@hono/zod-openapi";
import {
  AllPoolStats,
  GetPool,
  GetPoolStats,
  IPPOOL_SERVICE,
  ListPools,
  SuggestRange,
} from "@mikrom/contracts";
import { superuserOnly } from "../../auth/middleware.ts";
import type { GatewayApp } from "../../http/env.ts";
import { PageQuery, paged, pageOf } from "../../http/paging.ts";
import { BEARER, firstValues, inOrder, json, jsonRequest, problemJson } from "../../http/route-parts.ts";
import { readJson } from "../../http/validate.ts";
import { type PoolAccess, poolInPath } from "./access.ts";
import {
  AllStatsOut,
  PoolOut,
  PoolPath,
  poolOut,
  StatsOut,
  SuggestBody,
  SuggestOut,
  statsOut,
} from "./schemas.ts";

const TAGS = ["ippools"];
const NOT_SUPERUSER = problemJson("Not a superuser");
const NO_SUCH_POOL = problemJson("No such pool");

export const listPools = createRoute({
  method: "get",
  path: "/api/v1/ippools",
  summary: "List IP pools (superuser)",
  tags: TAGS,
  middleware: superuserOnly,
  security: BEARER,
  request: { query: firstValues(PageQuery) },
  responses: { 200: json("A page of pools", pageOf(PoolOut)), 403: NOT_SUPERUSER },
});

export const allPoolStats = createRoute({
  method: "get",
  path: "/api/v1/ippools/stats",
  summary: "Usage of every pool (superuser)",
  tags: TAGS,
  middleware: superuserOnly,
  security: BEARER,
  responses: { 200: json("Stats", AllStatsOut), 403: NOT_SUPERUSER },
});

export const suggestRange = createRoute({
  method: "post",
  path: "/api/v1/ippools/suggest-range",
  summary: "The layout of a CIDR and the range to offer (superuser)",
  tags: TAGS,
  middleware: inOrder(superuserOnly, readJson),
  security: BEARER,
  request: { body: jsonRequest(SuggestBody) },
  responses: { 200: json("Suggestion", SuggestOut), 403: NOT_SUPERUSER },
});

export const readPool = createRoute({
  method: "get",
  path: "/api/v1/ippools/{pool_id}",
  summary: "Read an IP pool (superuser)",
  tags: TAGS,
  middleware: inOrder(superuserOnly, poolInPath),
  security: BEARER,
  request: { params: PoolPath },
  responses: { 200: json("The pool", PoolOut), 403: NOT_SUPERUSER, 404: NO_SUCH_POOL },
});

export const poolStats = createRoute({
  method: "get",
  path: "/api/v1/ippools/{pool_id}/stats",
  summary: "Usage of one pool (superuser)",
  tags: TAGS,
  middleware: inOrder(superuserOnly, poolInPath),
  security: BEARER,
  request: { params: PoolPath },
  responses: { 200: json("Stats", StatsOut), 403: NOT_SUPERUSER, 404: NO_SUCH_POOL },
});

/**
 * The IP pool reads (superuser). `/stats` is registered before `/{pool_id}`: both match it, and the
 * first registered answers.
 */
export function poolQueryRoutes(app: GatewayApp, pools: PoolAccess): void {
  const { backend, queryTimeoutMs } = pools;

  app.openapi(listPools, async (c) => {
    const q = c.req.valid("query");
    const { items } = await pools.ask(
      backend.query(IPPOOL_SERVICE, ListPools, {}, queryTimeoutMs),
      "IP pools",
    );
    const start = (q.page - 1) * q.page_size;
    return c.json(
      paged(items.slice(start, start + q.page_size).map(poolOut), items.length, q.page, q.page_size),
      200,
    );
  });

  app.openapi(allPoolStats, async (c) => {
    const s = await pools.ask(backend.query(IPPOOL_SERVICE, AllPoolStats, {}, queryTimeoutMs), "IP pools");
    return c.json(
      {
        pools: s.pools.map(statsOut),
        total: s.total,
        allocated: s.allocated,
        available: s.available,
        usage_percent: s.usagePercent,
      },
      200,
    );
  });

  app.openapi(suggestRange, async (c) => {
    const { cidr } = c.req.valid("json");
    const s = await pools.ask(backend.query(IPPOOL_SERVICE, SuggestRange, { cidr }, queryTimeoutMs));
    return c.json(
      {
        cidr: s.cidr,
        network: s.network,
        prefix_length: s.prefixLength,
        netmask: s.netmask,
        first_usable: s.firstUsable,
        last_usable: s.lastUsable,
        broadcast: s.broadcast,
        total_hosts: s.totalHosts,
        gateway: s.suggestedGateway,
        start_ip: s.suggestedStart,
        end_ip: s.suggestedEnd,
        size: s.suggestedSize,
      },
      200,
    );
  });

  app.openapi(readPool, async (c) => {
    const poolId = c.get("poolId");
    return c.json(
      poolOut(await pools.ask(backend.query(IPPOOL_SERVICE, GetPool, { poolId }, queryTimeoutMs))),
      200,
    );
  });

  app.openapi(poolStats, async (c) => {
    const poolId = c.get("poolId");
    return c.json(
      statsOut(await pools.ask(backend.query(IPPOOL_SERVICE, GetPoolStats, { poolId }, queryTimeoutMs))),
      200,
    );
  });
}
