import type { GatewayApp } from "../../http/env.ts";
import { PoolAccess, type PoolRouteDeps } from "./access.ts";
import { poolCommandRoutes } from "./commands.ts";
import { poolQueryRoutes } from "./queries.ts";

export type { PoolRouteDeps } from "./access.ts";

/** `/api/v1/ippools` (superuser): the IP pools, their usage, and the range to offer for a CIDR. */
export function ippoolRoutes(app: GatewayApp, deps: PoolRouteDeps): void {
  const pools = new PoolAccess(deps);
  // The reads first: GET /api/v1/ippools/stats must reach its own route before /{pool_id}.
  poolQueryRoutes(app, pools);
  poolCommandRoutes(app, pools);
}
