import { BaseEnv, parseEnv, serviceDatabaseUrl } from "@mikrom/runtime";
import { z } from "zod";
import { parseCidr } from "./domain/ipv4.ts";
import { layoutOf } from "./domain/suggest-range.ts";

/**
 * The service's environment, parsed once at start. Every missing or malformed variable is named
 * in one error. The database is the service's own: `<base database>_ippool` on the server that
 * DATABASE_URL names (created when missing), unless IPPOOL_DATABASE_URL names one outright.
 */
const Env = BaseEnv.extend({
  IPPOOL_DATABASE_URL: z.url().optional(),
  IPPOOL_DEFAULT_CIDR: z
    .string()
    .default("172.16.0.0/24")
    .refine((c) => parseCidr(c).ok, {
      error: (i) => (parseCidr(String(i.input)) as { reason: string }).reason,
    }),
  /** How many commands one instance handles at once (each holds a database connection). */
  IPPOOL_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(8),
  /** How long a command may run without an ack before another instance gets it (working acks extend it). */
  IPPOOL_ACK_WAIT_MS: z.coerce.number().int().min(1_000).max(600_000).default(5_000),
});

export interface Config {
  natsUrl: string;
  databaseUrl: string;
  namespace: string;
  /** JetStream replicas of the streams this service declares. */
  streamReplicas: number;
  defaultPool: { cidr: string; gateway: string; rangeStart: string; rangeEnd: string };
  concurrency: number;
  ackWaitMs: number;
  healthPort: number | undefined;
  logLevel: string;
  logFormat: "json" | "text";
}

export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const e = parseEnv("ippool-service", Env, env);
  const layout = layoutOf(
    (parseCidr(e.IPPOOL_DEFAULT_CIDR) as { ok: true; value: Parameters<typeof layoutOf>[0] }).value,
  );
  return {
    natsUrl: e.NATS_URL,
    databaseUrl: e.IPPOOL_DATABASE_URL ?? serviceDatabaseUrl(e.DATABASE_URL, "ippool"),
    namespace: e.MIKROM_NAMESPACE,
    streamReplicas: e.MIKROM_STREAM_REPLICAS,
    defaultPool: {
      cidr: layout.cidr,
      gateway: layout.suggestedGateway,
      rangeStart: layout.suggestedStart,
      rangeEnd: layout.suggestedEnd,
    },
    concurrency: e.IPPOOL_CONCURRENCY,
    ackWaitMs: e.IPPOOL_ACK_WAIT_MS,
    healthPort: e.HEALTH_PORT,
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT,
  };
}
