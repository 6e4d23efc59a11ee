import { type GaugeRegistration, observeGauge } from "@mikrom/telemetry";

/** The database a connection string names: the gauge's one attribute (each service has its own). */
export function databaseName(connectionString: string): string {
  try {
    return decodeURIComponent(new URL(connectionString).pathname.replace(/^\//, "")) || "postgres";
  } catch {
    return "unknown";
  }
}

/**
 * `mikrom.outbox.backlog`: rows committed and not yet acknowledged by JetStream, counted once per
 * metric collection. The outbox holds pending rows only, so the count stays cheap while the relay
 * keeps up; a growing value means it does not (NATS down, or a relay without the lease everywhere).
 */
export function observeOutboxBacklog(database: string, count: () => Promise<number>): GaugeRegistration {
  return observeGauge(
    "mikrom.outbox.backlog",
    { unit: "{message}", description: "Outbox messages committed and not yet published to JetStream" },
    async (observe) => observe(await count(), { "db.namespace": database }),
  );
}
