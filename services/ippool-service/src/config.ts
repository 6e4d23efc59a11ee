import { z } from "zod";
import { parseCidr } from "./domain/ipv4.ts";
import { layoutOf } from "./domain/suggest-range.ts";

/**
 * The service's environment, parsed once at start. Every missing or malformed variable is named
 * in one error. The database is the service's own: `<base database>_ippool` on the server that
 * DATABASE_URL names (created when missing), unless IPPOOL_DATABASE_URL names one outright.
 */
const Env = z.object({
  NATS_URL: z.string().min(1).default("nats://127.0.0.1:4222"),
  DATABASE_URL: z.url().default("postgres://postgres@127.0.0.1:5432/mikrom"),
  IPPOOL_DATABASE_URL: z.url().optional(),
  MIKROM_NAMESPACE: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/, "letters, digits, '-' and '_' only")
    .default("mikrom"),
  IPPOOL_DEFAULT_CIDR: z
    .string()
    .default("172.16.0.0/24")
    .refine((c) => parseCidr(c).ok, {
      error: (i) => (parseCidr(String(i.input)) as { reason: string }).reason,
    }),
  /** How many commands one instance handles at once (each holds a database connection). */
  IPPOOL_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(8),
  /** How long a command may run without an ack before another instance gets it (working acks extend it). */
  IPPOOL_ACK_WAIT_MS: z.coerce.number().int().min(1_000).max(600_000).default(30_000),
  LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
  LOG_FORMAT: z.enum(["json", "text"]).default("json"),
});

export interface Config {
  natsUrl: string;
  databaseUrl: string;
  namespace: string;
  defaultPool: { cidr: string; gateway: string; rangeStart: string; rangeEnd: string };
  concurrency: number;
  ackWaitMs: number;
  logLevel: string;
  logFormat: "json" | "text";
}

export function serviceDatabaseUrl(base: string): string {
  const url = new URL(base);
  const name = decodeURIComponent(url.pathname.replace(/^\//, "")) || "mikrom";
  url.pathname = `/${name}_ippool`;
  return url.toString();
}

export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const parsed = Env.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("\n  ");
    throw new Error(`ippool-service configuration is invalid:\n  ${problems}`);
  }
  const e = parsed.data;
  const layout = layoutOf(
    (parseCidr(e.IPPOOL_DEFAULT_CIDR) as { ok: true; value: Parameters<typeof layoutOf>[0] }).value,
  );
  return {
    natsUrl: e.NATS_URL,
    databaseUrl: e.IPPOOL_DATABASE_URL ?? serviceDatabaseUrl(e.DATABASE_URL),
    namespace: e.MIKROM_NAMESPACE,
    defaultPool: {
      cidr: layout.cidr,
      gateway: layout.suggestedGateway,
      rangeStart: layout.suggestedStart,
      rangeEnd: layout.suggestedEnd,
    },
    concurrency: e.IPPOOL_CONCURRENCY,
    ackWaitMs: e.IPPOOL_ACK_WAIT_MS,
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT,
  };
}
