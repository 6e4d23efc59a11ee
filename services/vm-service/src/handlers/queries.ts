import { QueryFailed, type QueryServer, querySpec, serveQuery } from "@mikrom/bus";
import {
  type Actor,
  GetVm,
  ListHosts,
  ListVms,
  type QueryDef,
  type RequestOf,
  type ResponseOf,
  VM_SERVICE,
  VmHistory,
  type VmView,
  WaitVm,
} from "@mikrom/contracts";
import { withContext, withSpan } from "@mikrom/telemetry";
import type { NatsConnection } from "@nats-io/transport-node";
import { definitionOf } from "../messaging/subjects.ts";
import { findVm, listHosts, listVms, toView, type VmRow } from "../store/read-model.ts";
import type { HandlerDeps } from "./context.ts";

/** The VM row as this actor may see it: another user's VM, or a deleted one, does not exist. */
async function visibleVm(
  deps: HandlerDeps,
  vmId: string,
  actor: Actor,
  opts: { deletedToo?: boolean } = {},
): Promise<VmRow> {
  const row = await findVm(deps.db, vmId);
  if (!row || (row.deleted && !opts.deletedToo) || (!actor.superuser && row.user_id !== actor.userId))
    throw new QueryFailed("not_found", `VM ${vmId} not found`);
  return row;
}

export async function getVm(deps: HandlerDeps, req: RequestOf<typeof GetVm>): Promise<VmView> {
  return toView(await visibleVm(deps, req.vmId, req.actor));
}

export async function listVmsQuery(
  deps: HandlerDeps,
  req: RequestOf<typeof ListVms>,
): Promise<ResponseOf<typeof ListVms>> {
  return listVms(deps.db, {
    userId: req.actor.superuser ? null : req.actor.userId,
    ...(req.status ? { status: req.status } : {}),
    page: req.page,
    pageSize: req.pageSize,
    ...(req.after ? { after: req.after } : {}),
  });
}

/** The host registry: superusers only (hosts, their load and liveness are the operator's). */
export async function listHostsQuery(
  deps: HandlerDeps,
  req: RequestOf<typeof ListHosts>,
): Promise<ResponseOf<typeof ListHosts>> {
  if (!req.actor.superuser) throw new QueryFailed("forbidden", "only a superuser may list hosts");
  return { items: await listHosts(deps.db) };
}

/** Every event of the VM with its time, actor and trace id; readable after delete, by its owner. */
export async function vmHistory(
  deps: HandlerDeps,
  req: RequestOf<typeof VmHistory>,
): Promise<ResponseOf<typeof VmHistory>> {
  await visibleVm(deps, req.vmId, req.actor, { deletedToo: true });
  const { events } = await deps.store.readStream(req.vmId);
  return {
    events: events.map((e) => {
      const actor = e.metadata.actor;
      return {
        eventId: e.id,
        type: e.type,
        version: definitionOf(e.type).version,
        data: e.data as Record<string, unknown>,
        recordedAt: e.recordedAt.toISOString(),
        actor: actor
          ? {
              ...(actor.userId !== undefined ? { userId: Number(actor.userId) } : {}),
              ...(actor.userName !== undefined ? { userName: actor.userName } : {}),
            }
          : null,
        // traceparent: version-traceid-spanid-flags
        traceId: e.metadata.trace?.traceparent?.split("-")[1] ?? null,
      };
    }),
  };
}

/**
 * Answers when the VM reaches the status or the timeout passes. It listens to the VM's events before
 * reading its state, so a transition between the read and the subscription is never missed; any
 * replica's events wake it, since they all go through NATS.
 */
export async function waitVm(
  deps: HandlerDeps & { nc: NatsConnection },
  req: RequestOf<typeof WaitVm>,
): Promise<ResponseOf<typeof WaitVm>> {
  const sub = deps.nc.subscribe(deps.names.eventsOf(VM_SERVICE, req.vmId));
  try {
    let row = await visibleVm(deps, req.vmId, req.actor, { deletedToo: true });
    const reached = (r: VmRow): boolean => !r.deleted && r.status === req.status;
    if (reached(row)) return { reached: true, vm: toView(row) };
    const deadline = setTimeout(() => sub.unsubscribe(), req.timeoutMs);
    try {
      for await (const _ of sub) {
        row = (await findVm(deps.db, req.vmId)) ?? row;
        if (reached(row)) return { reached: true, vm: toView(row) };
        if (row.deleted) break;
      }
    } finally {
      clearTimeout(deadline);
    }
    return { reached: reached(row), vm: toView(row) };
  } finally {
    sub.unsubscribe();
  }
}

/** Runs a query handler with the log context and span of its operation. */
function traced<Req extends { actor: Actor; vmId?: string }, Res>(
  name: string,
  fn: (req: Req) => Promise<Res>,
): (req: Req) => Promise<Res> {
  return (req) =>
    withContext(
      { ...(req.vmId ? { vm_id: req.vmId } : {}), user_id: String(req.actor.userId), action: name },
      () => withSpan(`service.vm.${name}`, { "mikrom.query": name }, () => fn(req)),
    );
}

/** Serves `<ns>.qry.vm.<name>` on core NATS, in a queue group shared by every replica. */
export function serveQueries(deps: HandlerDeps & { nc: NatsConnection }): QueryServer[] {
  const opts = { queue: "vm-service" };
  const spec = <Q extends QueryDef>(def: Q) => querySpec(deps.names, VM_SERVICE, def);
  return [
    serveQuery(
      deps.nc,
      spec(GetVm),
      traced("get", (req) => getVm(deps, req)),
      opts,
    ),
    serveQuery(
      deps.nc,
      spec(ListVms),
      traced("list", (req) => listVmsQuery(deps, req)),
      opts,
    ),
    serveQuery(
      deps.nc,
      spec(VmHistory),
      traced("history", (req) => vmHistory(deps, req)),
      opts,
    ),
    serveQuery(
      deps.nc,
      spec(ListHosts),
      traced("hosts", (req) => listHostsQuery(deps, req)),
      opts,
    ),
    serveQuery(
      deps.nc,
      spec(WaitVm),
      traced("wait", (req) => waitVm(deps, req)),
      opts,
    ),
  ];
}
