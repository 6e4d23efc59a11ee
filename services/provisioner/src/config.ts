import { availableParallelism, hostname, totalmem } from "node:os";
import { HostId } from "@mikrom/contracts";
import { BaseEnv, hostDatabaseUrl } from "@mikrom/runtime";
import { z } from "zod";
import { type DriverConfig, driverConfigFromEnv } from "./drivers/index.ts";

/**
 * The agent's environment, parsed once at start; every missing or malformed variable is named in
 * one error. The database is the host's own: `<base database>_provisioner_<hostId>` on the server
 * DATABASE_URL names (created when missing), unless PROVISIONER_DATABASE_URL names one outright.
 */
const flag = z
  .enum(["true", "false", "1", "0", "yes", "no"])
  .default("false")
  .transform((v) => v === "true" || v === "1" || v === "yes");
const positiveInt = (fallback: number) => z.coerce.number().int().positive().default(fallback);

/**
 * Commands a host handles at once unless PROVISIONER_CONCURRENCY says: 4 per core (the vCPU
 * overcommit's ratio), at least 4 and at most 64. A boot mostly waits on the hypervisor and the guest,
 * whose work the host's scheduler spreads over its cores: a fixed 4 left a big host idle with boots
 * queued, and 64 on a small one only slows every boot.
 */
export function concurrencyFor(cores: number): number {
  return Math.min(64, Math.max(4, cores * 4));
}

const Env = BaseEnv.extend({
  PROVISIONER_DATABASE_URL: z.url().optional(),
  MIKROM_HOST_ID: HostId.optional(),
  /** vCPUs offered to VMs: overcommitted 4:1 by default, as microVM hosts commonly run (memory is not). */
  MIKROM_HOST_VCPUS: positiveInt(availableParallelism() * 4),
  MIKROM_HOST_MEMORY_MB: positiveInt(Math.floor(totalmem() / 2 ** 20)),
  HEARTBEAT_INTERVAL_MS: z.coerce.number().int().min(100).max(600_000).default(10_000),
  /** Commands handled at once (boots of different VMs run in parallel; one VM's are serialized). */
  PROVISIONER_CONCURRENCY: z.coerce
    .number()
    .int()
    .min(1)
    .max(64)
    .default(concurrencyFor(availableParallelism())),
  /** How long a command may go without an ack; `working` acks extend it while a boot runs. */
  PROVISIONER_ACK_WAIT_MS: z.coerce.number().int().min(1_000).max(600_000).default(5_000),
  /** Stop every VM when the agent stops gracefully (default: VMs outlive the agent). */
  PROVISIONER_STOP_VMS_ON_EXIT: flag,
});

export interface Config {
  natsUrl: string;
  databaseUrl: string;
  namespace: string;
  /** JetStream replicas of the streams this service declares. */
  streamReplicas: number;
  hostId: string;
  vcpus: number;
  memoryMb: number;
  heartbeatIntervalMs: number;
  concurrency: number;
  ackWaitMs: number;
  stopVmsOnExit: boolean;
  healthPort: number | undefined;
  logLevel: string;
  logFormat: "json" | "text";
  driver: DriverConfig;
}

/** The hostname as a host id: subject-safe characters only, at most 64. */
export function hostIdFromHostname(name: string = hostname()): string {
  const cleaned = name
    .replace(/[^A-Za-z0-9_-]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 64);
  return cleaned || "host";
}

export function loadConfig(env: Readonly<Record<string, string | undefined>> = process.env): Config {
  // An empty variable means "not set" (a compose file's `FOO=`).
  const given = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== ""));
  // Not parseEnv: the driver's problems are named in the same error as the schema's.
  const parsed = Env.safeParse(given);
  const problems = parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
  let driver: DriverConfig | undefined;
  try {
    driver = driverConfigFromEnv(env);
  } catch (error) {
    problems.push((error as Error).message);
  }
  if (!parsed.success || !driver) {
    throw new Error(`provisioner configuration is invalid:\n  ${problems.join("\n  ")}`);
  }
  const e = parsed.data;
  const hostId = e.MIKROM_HOST_ID ?? hostIdFromHostname();
  return {
    natsUrl: e.NATS_URL,
    databaseUrl: e.PROVISIONER_DATABASE_URL ?? hostDatabaseUrl(e.DATABASE_URL, hostId),
    namespace: e.MIKROM_NAMESPACE,
    streamReplicas: e.MIKROM_STREAM_REPLICAS,
    hostId,
    vcpus: e.MIKROM_HOST_VCPUS,
    memoryMb: e.MIKROM_HOST_MEMORY_MB,
    heartbeatIntervalMs: e.HEARTBEAT_INTERVAL_MS,
    concurrency: e.PROVISIONER_CONCURRENCY,
    ackWaitMs: e.PROVISIONER_ACK_WAIT_MS,
    stopVmsOnExit: e.PROVISIONER_STOP_VMS_ON_EXIT,
    healthPort: e.HEALTH_PORT,
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT,
    driver,
  };
}
