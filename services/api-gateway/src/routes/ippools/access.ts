import {
  type CreatePool,
  type DeletePool,
  IPPOOL_SERVICE,
  PoolId,
  type QueryReply,
  type UpdatePool,
} from "@mikrom/contracts";
import type { Context, MiddlewareHandler } from "hono";
import type { Backend, CommandOutcome } from "../../backend.ts";
import type { Commands } from "../../commands/dispatcher.ts";
import { commandIdFor } from "../../commands/ids.ts";
import { Problem } from "../../http/problem.ts";
import type { UserRow } from "../../store/users.ts";
import { dataOf } from "../outcomes.ts";

export interface PoolRouteDeps {
  readonly backend: Backend;
  readonly commands: Commands;
  readonly queryTimeoutMs: number;
}

/** What a route behind `poolInPath` knows: the pool its path names. */
export interface PoolPathEnv {
  Variables: { poolId: string };
}

/**
 * Route middleware: the path's `pool_id` must be a pool id, or there is no such pool (404). It runs
 * before the body is read, so a request for a pool that cannot exist is a 404 whatever its body.
 */
export const poolInPath: MiddlewareHandler<PoolPathEnv> = async (c, next) => {
  const parsed = PoolId.safeParse(c.req.param("pool_id"));
  if (!parsed.success) throw new Problem(404, "IP pool not found");
  c.set("poolId", parsed.data);
  await next();
};

/** How the IP pool routes reach ippool-service: its queries and its commands. */
export class PoolAccess {
  readonly backend: Backend;
  readonly commands: Commands;
  readonly queryTimeoutMs: number;

  constructor(deps: PoolRouteDeps) {
    this.backend = deps.backend;
    this.commands = deps.commands;
    this.queryTimeoutMs = deps.queryTimeoutMs;
  }

  /** A query's answer, or its error as HTTP (`what` names it: "IP pool not found"). */
  async ask<T>(reply: Promise<QueryReply<T>>, what = "IP pool"): Promise<T> {
    return dataOf(await reply, what);
  }

  /** Sends a command about one pool; with an Idempotency-Key its id comes from the key and the request. */
  send(
    c: Context,
    user: UserRow,
    verb: string,
    def: typeof CreatePool | typeof UpdatePool | typeof DeletePool,
    data: unknown,
    poolId: string,
  ): Promise<CommandOutcome> {
    const idempotencyKey: string | undefined = c.get("idempotencyKey");
    return this.commands.submit({
      service: IPPOOL_SERVICE,
      verb,
      def,
      data,
      context: "ippool",
      entityId: poolId,
      commandId: commandIdFor(user.id, idempotencyKey, `${c.req.method} ${c.req.path}`),
      userId: user.id,
    });
  }
}
