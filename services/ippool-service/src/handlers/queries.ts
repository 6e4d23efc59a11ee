import {
  AddressHistory,
  AllPoolStats,
  GetPool,
  GetPoolStats,
  ListPools,
  type QueryDef,
  type QueryReply,
  type RequestOf,
  type ResponseOf,
  SuggestRange,
  ValidatePool,
  VmAllocations,
} from "@mikrom/contracts";
import { suggestRange } from "../domain/suggest-range.ts";
import { validatePool } from "../domain/validation.ts";
import { livePools } from "../store/pools.ts";
import {
  addressHistory,
  getPool,
  listPools,
  poolStats,
  usagePercent,
  vmAllocations,
} from "../store/reads.ts";
import type { Db } from "../store/tables.ts";

/** One query this service answers: its contract and how it is answered from the read model. */
export interface QueryHandler<Q extends QueryDef = QueryDef> {
  readonly def: Q;
  answer(request: RequestOf<Q>): Promise<QueryReply<ResponseOf<Q>>>;
}

const ok = <T>(data: T): QueryReply<T> => ({ ok: true, data });
const notFound = <T>(message: string): QueryReply<T> => ({
  ok: false,
  error: { code: "not_found", message },
});

function handler<Q extends QueryDef>(
  def: Q,
  answer: (request: RequestOf<Q>) => Promise<QueryReply<ResponseOf<Q>>>,
): QueryHandler<Q> {
  return { def, answer };
}

/** Every `<ns>.qry.ippool.<name>` query, answered from the read model (requests are validated before). */
export function ippoolQueryHandlers(db: Db): QueryHandler[] {
  return [
    handler(ListPools, async () => ok({ items: await listPools(db) })),
    handler(GetPool, async ({ poolId }) => {
      const pool = await getPool(db, poolId);
      return pool ? ok(pool) : notFound(`pool ${poolId} does not exist`);
    }),
    handler(GetPoolStats, async ({ poolId }) => {
      const [stats] = await poolStats(db, poolId);
      return stats ? ok(stats) : notFound(`pool ${poolId} does not exist`);
    }),
    handler(AllPoolStats, async () => {
      const pools = await poolStats(db);
      const total = pools.reduce((n, p) => n + p.total, 0);
      const allocated = pools.reduce((n, p) => n + p.allocated, 0);
      return ok({
        pools,
        total,
        allocated,
        available: total - allocated,
        usagePercent: usagePercent(allocated, total),
      });
    }),
    handler(SuggestRange, async ({ cidr }) => {
      const layout = suggestRange(cidr);
      return layout.ok ? ok(layout.value) : { ok: false, error: { code: "invalid", message: layout.reason } };
    }),
    handler(ValidatePool, async (definition) => {
      const result = validatePool(definition, await livePools(db));
      return ok({ valid: result.ok, issues: result.ok ? [] : result.issues });
    }),
    handler(AddressHistory, async ({ address }) =>
      ok({ address, allocations: await addressHistory(db, address) }),
    ),
    handler(VmAllocations, async ({ vmId }) => {
      const allocations = await vmAllocations(db, vmId);
      return ok({ vmId, current: allocations.find((a) => a.releasedAt === null) ?? null, allocations });
    }),
  ] as QueryHandler[];
}
