import {
  AllPoolStats,
  CreatePool,
  DeletePool,
  GetPool,
  GetPoolStats,
  IPPOOL_SERVICE,
  ListPools,
  PoolId,
  SuggestRange,
  UpdatePool,
  ValidatePool,
} from "@mikrom/contracts";
import { withSpan } from "@mikrom/telemetry";
import type { Context } from "hono";
import { requireSuperuser } from "../auth/middleware.ts";
import type { Backend } from "../backend.ts";
import type { Commands } from "../commands/dispatcher.ts";
import { commandIdFor, entityIdFor } from "../commands/ids.ts";
import type { AppEnv, GatewayApp } from "../http/env.ts";
import type { OpenApi } from "../http/openapi.ts";
import { PageQuery, paged, pageOf } from "../http/paging.ts";
import { Problem, validationProblem } from "../http/problem.ts";
import { jsonBody, queryParams } from "../http/validate.ts";
import { dataOf, unlessRejected } from "./outcomes.ts";
import {
  AllStatsOut,
  FIELD,
  PoolCreateBody,
  PoolOut,
  PoolPatchBody,
  poolOut,
  StatsOut,
  SuggestBody,
  SuggestOut,
  statsOut,
} from "./pool-schemas.ts";

export interface PoolRouteDeps {
  readonly backend: Backend;
  readonly commands: Commands;
  readonly queryTimeoutMs: number;
}

const TAGS = ["ippools"];

export function ippoolRoutes(app: GatewayApp, deps: PoolRouteDeps, docs: OpenApi): void {
  const { backend } = deps;
  const ask = <T>(reply: Promise<import("@mikrom/contracts").QueryReply<T>>, what = "IP pool"): Promise<T> =>
    reply.then((r) => dataOf(r, what));
  const poolIdOf = (c: Context<AppEnv>): string => {
    const parsed = PoolId.safeParse(c.req.param("pool_id"));
    if (!parsed.success) throw new Problem(404, "IP pool not found");
    return parsed.data;
  };
  const send = (
    c: Context<AppEnv>,
    verb: string,
    def: typeof CreatePool | typeof UpdatePool | typeof DeletePool,
    data: unknown,
    poolId: string,
  ) => {
    const user = requireSuperuser(c);
    return deps.commands.submit({
      service: IPPOOL_SERVICE,
      verb,
      def,
      data,
      context: "ippool",
      entityId: poolId,
      commandId: commandIdFor(user.id, c.get("idempotencyKey"), `${c.req.method} ${c.req.path}`),
      userId: user.id,
    });
  };

  docs.add({
    method: "post",
    path: "/api/v1/ippools",
    summary: "Create an IP pool (superuser)",
    tags: TAGS,
    body: PoolCreateBody,
    responses: {
      201: { description: "Created", schema: PoolOut },
      403: { description: "Not a superuser", problem: true },
      409: { description: "Refused", problem: true },
    },
  });
  app.post("/api/v1/ippools", async (c) => {
    requireSuperuser(c);
    const body = await jsonBody(c, PoolCreateBody);
    const definition = {
      name: body.name,
      cidr: body.cidr,
      gateway: body.gateway,
      rangeStart: body.start_ip,
      rangeEnd: body.end_ip,
      description: body.description ?? null,
    };
    return withSpan("api.ippool.create", {}, async () => {
      const check = await ask(backend.query(IPPOOL_SERVICE, ValidatePool, definition, deps.queryTimeoutMs));
      if (!check.valid) {
        throw validationProblem(
          check.issues.map((i) => {
            const field = FIELD[i.field] ?? i.field;
            return { field: `body.${field}`, message: i.message, loc: ["body", field], type: "value_error" };
          }),
        );
      }
      const poolId = entityIdFor("pool", requireSuperuser(c).id, c.get("idempotencyKey"));
      const outcome = unlessRejected(
        await send(c, "create", CreatePool, { ...definition, poolId }, poolId),
        "IP pool",
      );
      c.header("Location", `/api/v1/ippools/${poolId}`);
      if (outcome.status === "pending")
        return c.json({ message: "Accepted; ippool-service has not answered yet", id: poolId }, 202);
      return c.json(
        poolOut(await ask(backend.query(IPPOOL_SERVICE, GetPool, { poolId }, deps.queryTimeoutMs))),
        201,
      );
    });
  });

  docs.add({
    method: "get",
    path: "/api/v1/ippools",
    summary: "List IP pools (superuser)",
    tags: TAGS,
    query: PageQuery,
    responses: { 200: { description: "A page of pools", schema: pageOf(PoolOut) } },
  });
  app.get("/api/v1/ippools", async (c) => {
    requireSuperuser(c);
    const q = queryParams(c, PageQuery);
    const { items } = await ask(
      backend.query(IPPOOL_SERVICE, ListPools, {}, deps.queryTimeoutMs),
      "IP pools",
    );
    const start = (q.page - 1) * q.page_size;
    return c.json(
      paged(items.slice(start, start + q.page_size).map(poolOut), items.length, q.page, q.page_size),
    );
  });

  docs.add({
    method: "get",
    path: "/api/v1/ippools/stats",
    summary: "Usage of every pool (superuser)",
    tags: TAGS,
    responses: { 200: { description: "Stats", schema: AllStatsOut } },
  });
  app.get("/api/v1/ippools/stats", async (c) => {
    requireSuperuser(c);
    const s = await ask(backend.query(IPPOOL_SERVICE, AllPoolStats, {}, deps.queryTimeoutMs), "IP pools");
    return c.json({
      pools: s.pools.map(statsOut),
      total: s.total,
      allocated: s.allocated,
      available: s.available,
      usage_percent: s.usagePercent,
    });
  });

  docs.add({
    method: "post",
    path: "/api/v1/ippools/suggest-range",
    summary: "The layout of a CIDR and the range to offer (superuser)",
    tags: TAGS,
    body: SuggestBody,
    responses: { 200: { description: "Suggestion", schema: SuggestOut } },
  });
  app.post("/api/v1/ippools/suggest-range", async (c) => {
    requireSuperuser(c);
    const body = await jsonBody(c, SuggestBody);
    const s = await ask(
      backend.query(IPPOOL_SERVICE, SuggestRange, { cidr: body.cidr }, deps.queryTimeoutMs),
    );
    return c.json({
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
    });
  });

  docs.add({
    method: "get",
    path: "/api/v1/ippools/:pool_id",
    summary: "Read an IP pool (superuser)",
    tags: TAGS,
    responses: {
      200: { description: "The pool", schema: PoolOut },
      404: { description: "No such pool", problem: true },
    },
  });
  app.get("/api/v1/ippools/:pool_id", async (c) => {
    requireSuperuser(c);
    const poolId = poolIdOf(c);
    return c.json(
      poolOut(await ask(backend.query(IPPOOL_SERVICE, GetPool, { poolId }, deps.queryTimeoutMs))),
    );
  });

  docs.add({
    method: "get",
    path: "/api/v1/ippools/:pool_id/stats",
    summary: "Usage of one pool (superuser)",
    tags: TAGS,
    responses: {
      200: { description: "Stats", schema: StatsOut },
      404: { description: "No such pool", problem: true },
    },
  });
  app.get("/api/v1/ippools/:pool_id/stats", async (c) => {
    requireSuperuser(c);
    const poolId = poolIdOf(c);
    return c.json(
      statsOut(await ask(backend.query(IPPOOL_SERVICE, GetPoolStats, { poolId }, deps.queryTimeoutMs))),
    );
  });

  docs.add({
    method: "patch",
    path: "/api/v1/ippools/:pool_id",
    summary: "Rename, describe, activate or deactivate a pool (superuser)",
    tags: TAGS,
    body: PoolPatchBody,
    responses: {
      200: { description: "The pool", schema: PoolOut },
      404: { description: "No such pool", problem: true },
      409: { description: "Refused", problem: true },
    },
  });
  app.patch("/api/v1/ippools/:pool_id", async (c) => {
    requireSuperuser(c);
    const poolId = poolIdOf(c);
    const body = await jsonBody(c, PoolPatchBody);
    await ask(backend.query(IPPOOL_SERVICE, GetPool, { poolId }, deps.queryTimeoutMs));
    const changes = {
      poolId,
      ...(body.name !== undefined && { name: body.name }),
      ...(body.description !== undefined && { description: body.description }),
      ...(body.is_active !== undefined && { active: body.is_active }),
    };
    unlessRejected(await send(c, "update", UpdatePool, changes, poolId), "IP pool");
    return c.json(
      poolOut(await ask(backend.query(IPPOOL_SERVICE, GetPool, { poolId }, deps.queryTimeoutMs))),
    );
  });

  docs.add({
    method: "delete",
    path: "/api/v1/ippools/:pool_id",
    summary: "Delete a pool (superuser)",
    tags: TAGS,
    responses: {
      204: { description: "Deleted" },
      404: { description: "No such pool", problem: true },
      409: { description: "Refused (addresses in use)", problem: true },
    },
  });
  app.delete("/api/v1/ippools/:pool_id", async (c) => {
    requireSuperuser(c);
    const poolId = poolIdOf(c);
    await ask(backend.query(IPPOOL_SERVICE, GetPool, { poolId }, deps.queryTimeoutMs));
    unlessRejected(await send(c, "delete", DeletePool, { poolId }, poolId), "IP pool");
    return c.body(null, 204);
  });
}
