import { BaseEnv, parseEnv, serviceDatabaseUrl } from "@mikrom/runtime";
import { z } from "zod";

const Env = BaseEnv.extend({
  /** The service's own database; `<base>_audit` on the DATABASE_URL server when unset. */
  AUDIT_DATABASE_URL: z.url().optional(),
  /** Events recorded at once by one replica. */
  AUDIT_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(8),
});

export interface Config {
  natsUrl: string;
  databaseUrl: string;
  namespace: string;
  /** JetStream replicas of the streams this service declares. */
  streamReplicas: number;
  concurrency: number;
  healthPort: number | undefined;
}

export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const e = parseEnv("audit", Env, env);
  return {
    natsUrl: e.NATS_URL,
    databaseUrl: e.AUDIT_DATABASE_URL ?? serviceDatabaseUrl(e.DATABASE_URL, "audit"),
    namespace: e.MIKROM_NAMESPACE,
    streamReplicas: e.MIKROM_STREAM_REPLICAS,
    concurrency: e.AUDIT_CONCURRENCY,
    healthPort: e.HEALTH_PORT,
  };
}
