import type { GatewayApp } from "../../http/env.ts";
import { VmAccess, type VmRouteDeps } from "./access.ts";
import { vmCommandRoutes } from "./commands.ts";
import { vmQueryRoutes } from "./queries.ts";

export type { VmRouteDeps } from "./access.ts";

/** `/api/v1/vms`: the VM commands and reads, for the caller's own VMs (a superuser's: all). */
export function vmRoutes(app: GatewayApp, deps: VmRouteDeps): void {
  const vms = new VmAccess(deps);
  vmCommandRoutes(app, vms);
  vmQueryRoutes(app, vms);
}
