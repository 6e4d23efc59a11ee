import { type GaugeRegistration, observeGauges } from "@mikrom/telemetry";
import { poolStats } from "./store/reads.ts";
import type { Db } from "./store/tables.ts";

/**
 * `mikrom.ippool.free_addresses` and `mikrom.ippool.addresses` per live pool, read once per metric
 * collection from the counters on the pool rows (one small query, no scan of any range). Every
 * replica reports the same pools: dashboards take the max over instances.
 */
export function observePools(db: Db): GaugeRegistration {
  return observeGauges(
    {
      "mikrom.ippool.free_addresses": {
        unit: "{address}",
        description: "Addresses of the pool's range not allocated to any VM",
      },
      "mikrom.ippool.addresses": { unit: "{address}", description: "Addresses in the pool's range" },
    },
    async (observe) => {
      for (const pool of await poolStats(db)) {
        const attributes = { "mikrom.ippool.pool": pool.name };
        observe("mikrom.ippool.free_addresses", pool.available, attributes);
        observe("mikrom.ippool.addresses", pool.total, attributes);
      }
    },
  );
}
