import { VmStatus } from "@mikrom/contracts";
import { type GaugeRegistration, histogram, observeGauge } from "@mikrom/telemetry";
import { type Kysely, sql } from "kysely";
import type { EndedOperation } from "./domain/operations.ts";
import type { Tables } from "./store/tables.ts";

const operationDuration = histogram("mikrom.vm.operation.duration", {
  unit: "s",
  description: "VM operations from the event that starts them to the one that ends them",
  // Boots take seconds to minutes; deadlines are 30 s to 2 min.
  boundaries: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300],
});

export function recordOperations(ended: readonly EndedOperation[]): void {
  for (const e of ended) {
    operationDuration.record(e.seconds, { "mikrom.vm.operation": e.operation, "mikrom.outcome": e.outcome });
  }
}

/**
 * `mikrom.vms`: live VMs by status, counted in the read model once per metric collection. Every status
 * is reported, zero included, so a status that empties drops to 0 instead of keeping its last value.
 * Every replica reports the same counts: dashboards take the max over instances.
 */
export function observeVmStatuses(db: Kysely<Tables>): GaugeRegistration {
  return observeGauge(
    "mikrom.vms",
    { unit: "{vm}", description: "VMs by status (deleted ones excluded)" },
    async (observe) => {
      const { rows } = await sql<{ status: string; n: string }>`
        SELECT status, count(*) AS n FROM vms WHERE NOT deleted GROUP BY status`.execute(db);
      const counts = new Map(rows.map((r) => [r.status, Number(r.n)]));
      for (const status of VmStatus.options) {
        observe(counts.get(status) ?? 0, { "mikrom.vm.status": status });
      }
    },
  );
}
