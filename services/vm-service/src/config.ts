import { BaseEnv, parseEnv, serviceDatabaseUrl } from "@mikrom/runtime";
import { z } from "zod";
import type { Step } from "./domain/vm.ts";

/** Everything the VM service reads from its environment, parsed once at start. */
export interface Config {
  readonly natsUrl: string;
  /** The service's own database, `<base>_vm` on the DATABASE_URL server; created when missing. */
  readonly databaseUrl: string;
  readonly namespace: string;
  /** JetStream replicas of the streams this service declares. */
  readonly streamReplicas: number;
  readonly maxVmsPerUser: number;
  /** Default per-user totals of the VMs a user holds (a superuser's override travels in CreateVm). */
  readonly maxVcpusPerUser: number;
  readonly maxMemoryMbPerUser: number;
  /** How long each lifecycle step may wait for its answer before the VM goes to `error`. */
  readonly deadlines: Readonly<Record<Step, number>>;
  /** How often due deadlines and silent hosts are looked for. */
  readonly sweepIntervalMs: number;
  /** Silence after which a host is unreachable (its VMs keep their state). */
  readonly hostHeartbeatTimeoutMs: number;
  /** How long a host may stay unreachable before it is lost and its VMs are failed. */
  readonly hostLostAfterMs: number;
  /** A step without an answer this long has its command sent again (then at doubling intervals). */
  readonly resendAfterMs: number;
  /** Messages handled at once per consumer; the database pool is sized from it so handlers never wait on each other. */
  readonly handlerConcurrency: number;
  readonly healthPort: number | undefined;
  readonly logLevel: string;
  readonly logFormat: "json" | "text";
}

const ms = (fallback: number) => z.coerce.number().int().positive().default(fallback);

const Env = BaseEnv.extend({
  VM_DATABASE_URL: z.url().optional(),
  MAX_VMS_PER_USER: z.coerce.number().int().min(0).default(10),
  MAX_VCPUS_PER_USER: z.coerce.number().int().min(0).default(16),
  MAX_MEMORY_MB_PER_USER: z.coerce.number().int().min(0).default(16_384),
  ALLOCATE_TIMEOUT_MS: ms(30_000),
  // How long a VM holding an address waits for a live host with room before it fails.
  SCHEDULE_TIMEOUT_MS: ms(30_000),
  BOOT_TIMEOUT_MS: ms(120_000),
  START_TIMEOUT_MS: ms(120_000),
  STOP_TIMEOUT_MS: ms(60_000),
  RESTART_TIMEOUT_MS: ms(120_000),
  DELETE_TIMEOUT_MS: ms(60_000),
  SWEEP_INTERVAL_MS: ms(1_000),
  HOST_HEARTBEAT_TIMEOUT_MS: ms(30_000),
  HOST_LOST_AFTER_MS: ms(600_000),
  RESEND_AFTER_MS: ms(5_000),
  HANDLER_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(8),
});

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

/** `<base>_vm` on the same server as DATABASE_URL; a base already naming the service's database is kept. */
function vmDatabaseUrl(baseUrl: string): string {
  const url = new URL(baseUrl);
  return url.pathname.endsWith("_vm") ? url.toString() : serviceDatabaseUrl(baseUrl, "vm");
}

/** Parses the environment, naming every missing or malformed variable at once. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  let e: z.infer<typeof Env>;
  try {
    e = parseEnv("vm-service", Env, env);
  } catch (error) {
    // Callers and tests tell a bad environment from other start failures by this type.
    throw new ConfigError((error as Error).message, { cause: error });
  }
  return {
    natsUrl: e.NATS_URL,
    databaseUrl: e.VM_DATABASE_URL ?? vmDatabaseUrl(e.DATABASE_URL),
    namespace: e.MIKROM_NAMESPACE,
    streamReplicas: e.MIKROM_STREAM_REPLICAS,
    maxVmsPerUser: e.MAX_VMS_PER_USER,
    maxVcpusPerUser: e.MAX_VCPUS_PER_USER,
    maxMemoryMbPerUser: e.MAX_MEMORY_MB_PER_USER,
    deadlines: {
      allocate: e.ALLOCATE_TIMEOUT_MS,
      schedule: e.SCHEDULE_TIMEOUT_MS,
      boot: e.BOOT_TIMEOUT_MS,
      start: e.START_TIMEOUT_MS,
      stop: e.STOP_TIMEOUT_MS,
      restart: e.RESTART_TIMEOUT_MS,
      delete: e.DELETE_TIMEOUT_MS,
    },
    sweepIntervalMs: e.SWEEP_INTERVAL_MS,
    hostHeartbeatTimeoutMs: e.HOST_HEARTBEAT_TIMEOUT_MS,
    hostLostAfterMs: e.HOST_LOST_AFTER_MS,
    resendAfterMs: e.RESEND_AFTER_MS,
    handlerConcurrency: e.HANDLER_CONCURRENCY,
    healthPort: e.HEALTH_PORT,
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT,
  };
}
