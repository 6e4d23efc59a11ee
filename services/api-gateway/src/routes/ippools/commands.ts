import { createRoute } from "@hono/zod-openapi";
import { CreatePool, DeletePool, GetPool, IPPOOL_SERVICE, UpdatePool, ValidatePool } from "@mikrom/contracts";
import { withSpan } from "@mikrom/telemetry";
import { superuserOnly } from "../../auth/middleware.ts";
import { entityIdFor } from "../../commands/ids.ts";
import type { GatewayApp } from "../../http/env.ts";
import { validationProblem } from "../../http/problem.ts";
import { BEARER, inOrder, json, jsonRequest, problemJson } from "../../http/route-parts.ts";
import { readJson } from "../../http/validate.ts";
import { unlessRejected } from "../outcomes.ts";
import { type PoolAccess, poolInPath } from "./access.ts";
import { FIELD, PoolAccepted, PoolCreateBody, PoolOut, PoolPatchBody, PoolPath, poolOut } from "./schemas.ts";

const TAGS = ["ippools"];
const NOT_SUPERUSER = problemJson("Not a superuser");
const NO_SUCH_POOL = problemJson("No such pool");

export const createPool = createRoute({
  method: "post",
  path: "/api/v1/ippools",
  summary: "Create an IP pool (superuser)",
  tags: TAGS,
  middleware: inOrder(superuserOnly, readJson),
  security: BEARER,
  request: { body: jsonRequest(PoolCreateBody) },
  responses: {
    201: json("Created", PoolOut),
    202: json("Accepted; ippool-service did not answer within the bound (see Location)", PoolAccepted),
    403: NOT_SUPERUSER,
    409: problemJson("Refused"),
  },
});

export const updatePool = createRoute({
  method: "patch",
  path: "/api/v1/ippools/{pool_id}",
  summary: "Rename, describe, activate or deactivate a pool (superuser)",
  tags: TAGS,
  middleware: inOrder(superuserOnly, poolInPath, readJson),
  security: BEARER,
  request: { params: PoolPath, body: jsonRequest(PoolPatchBody) },
  responses: {
    200: json("The pool", PoolOut),
    403: NOT_SUPERUSER,
    404: NO_SUCH_POOL,
    409: problemJson("Refused"),
  },
});

export const deletePool = createRoute({
  method: "delete",
  path: "/api/v1/ippools/{pool_id}",
  summary: "Delete a pool (superuser)",
  tags: TAGS,
  middleware: inOrder(superuserOnly, poolInPath),
  security: BEARER,
  request: { params: PoolPath },
  responses: {
    204: { description: "Deleted" },
    403: NOT_SUPERUSER,
    404: NO_SUCH_POOL,
    409: problemJson("Refused (addresses in use)"),
  },
});

/** The IP pool commands (superuser): each answers once ippool-service accepted or refused it. */
export function poolCommandRoutes(app: GatewayApp, pools: PoolAccess): void {
  const { backend, queryTimeoutMs } = pools;

  app.openapi(createPool, async (c) => {
    const user = c.get("user");
    const body = c.req.valid("json");
    const definition = {
      name: body.name,
      cidr: body.cidr,
      gateway: body.gateway,
      rangeStart: body.start_ip,
      rangeEnd: body.end_ip,
      description: body.description ?? null,
    };
    return withSpan("api.ippool.create", {}, async () => {
      const check = await pools.ask(backend.query(IPPOOL_SERVICE, ValidatePool, definition, queryTimeoutMs));
      if (!check.valid) {
        throw validationProblem(
          check.issues.map((i) => {
            const field = FIELD[i.field] ?? i.field;
            return { field: `body.${field}`, message: i.message, loc: ["body", field], type: "value_error" };
          }),
        );
      }
      const poolId = entityIdFor("pool", user.id, c.get("idempotencyKey"));
      const outcome = unlessRejected(
        await pools.send(c, user, "create", CreatePool, { ...definition, poolId }, poolId),
        "IP pool",
      );
      c.header("Location", `/api/v1/ippools/${poolId}`);
      if (outcome.status === "pending")
        return c.json({ message: "Accepted; ippool-service has not answered yet", id: poolId }, 202);
      return c.json(
        poolOut(await pools.ask(backend.query(IPPOOL_SERVICE, GetPool, { poolId }, queryTimeoutMs))),
        201,
      );
    });
  });

  app.openapi(updatePool, async (c) => {
    const poolId = c.get("poolId");
    const body = c.req.valid("json");
    await pools.ask(backend.query(IPPOOL_SERVICE, GetPool, { poolId }, queryTimeoutMs));
    const changes = {
      poolId,
      ...(body.name !== undefined && { name: body.name }),
      ...(body.description !== undefined && { description: body.description }),
      ...(body.is_active !== undefined && { active: body.is_active }),
    };
    unlessRejected(await pools.send(c, c.get("user"), "update", UpdatePool, changes, poolId), "IP pool");
    return c.json(
      poolOut(await pools.ask(backend.query(IPPOOL_SERVICE, GetPool, { poolId }, queryTimeoutMs))),
      200,
    );
  });

  app.openapi(deletePool, async (c) => {
    const poolId = c.get("poolId");
    await pools.ask(backend.query(IPPOOL_SERVICE, GetPool, { poolId }, queryTimeoutMs));
    unlessRejected(await pools.send(c, c.get("user"), "delete", DeletePool, { poolId }, poolId), "IP pool");
    return c.body(null, 204);
  });
}
