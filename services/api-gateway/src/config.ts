import { randomBytes } from "node:crypto";
import { BaseEnv, PASSWORD, parseEnv, SIGNING_KEY, secretProblem, serviceDatabaseUrl } from "@mikrom/runtime";
import proxyAddr from "proxy-addr";
import { z } from "zod";

/** Everything the gateway reads from its environment, parsed once at start. */
export interface Config {
  readonly port: number;
  /** The address the API listens on (HOST); undefined: every interface. */
  readonly host: string | undefined;
  readonly natsUrl: string;
  /** The gateway's own database (users, refresh tokens, idempotency keys). */
  readonly databaseUrl: string;
  readonly namespace: string;
  /** JetStream replicas of the streams this service declares. */
  readonly streamReplicas: number;
  readonly environment: "development" | "production" | "test";
  readonly jwtSecret: string;
  /** True when no JWT_SECRET was given and one was generated for this process. */
  readonly jwtSecretGenerated: boolean;
  readonly admin: { readonly email: string; readonly password: string } | null;
  readonly rateLimit: {
    readonly windowMs: number;
    readonly perIp: number;
    readonly perUser: number;
    /** Per IP on the credential routes (login, register, refresh): guessing passwords stays slow. */
    readonly authPerIp: number;
  };
  /** Failed logins: free failures per account and per address, then a block that doubles each time. */
  readonly login: {
    readonly freeFailuresPerAccount: number;
    readonly freeFailuresPerIp: number;
    readonly baseBlockSeconds: number;
    readonly maxBlockSeconds: number;
    readonly failureWindowSeconds: number;
  };
  /** Requests one user may hold open at once, per replica. */
  readonly concurrency: {
    readonly ssePerUser: number;
    readonly waitsPerUser: number;
  };
  /** Allowed CORS origins; `["*"]` allows any. */
  readonly corsOrigins: readonly string[];
  readonly commandTimeoutMs: number;
  readonly queryTimeoutMs: number;
  readonly bodyLimitBytes: number;
  readonly sseHeartbeatMs: number;
  /**
   * The proxies whose X-Forwarded-For is believed (addresses, CIDRs, or proxy-addr's names
   * `loopback`, `linklocal`, `uniquelocal`); empty: none, the client is the socket's peer.
   */
  readonly trustProxy: readonly string[];
  /** Grafana's address: the web console links trace ids to it (Explore, the Tempo datasource). */
  readonly grafanaUrl?: string | undefined;
  /**
   * Who may create an account: anyone (`open`), no one but a superuser (`closed`), or whoever holds
   * an invitation a superuser issued (`invite`). Default: `invite` in production, `open` otherwise.
   */
  readonly registration: Registration;
  /** The gateway answers health on its API port. */
  readonly healthPort?: undefined;
}

export const REGISTRATION_MODES = ["open", "closed", "invite"] as const;
export type Registration = (typeof REGISTRATION_MODES)[number];

const int = (fallback: number) => z.coerce.number().int().positive().default(fallback);

/** A comma-separated list of proxies, each checked by proxy-addr itself; `false`/empty: none. */
const trustedProxies = z
  .string()
  .default("")
  .transform((raw, ctx) => {
    const list = raw
      .split(",")
      .map((p) => p.trim())
      .filter(Boolean);
    if (list.length === 0 || (list.length === 1 && ["false", "0", "no", "none"].includes(list[0]!)))
      return [];
    if (list.some((p) => ["true", "1", "yes", "*"].includes(p))) {
      ctx.addIssue({
        code: "custom",
        message:
          "trusting every peer lets any client choose its address: list the proxies in front of the gateway instead (addresses, CIDRs, or loopback, linklocal, uniquelocal)",
      });
      return z.NEVER;
    }
    try {
      proxyAddr.compile(list);
    } catch (error) {
      ctx.addIssue({ code: "custom", message: `${(error as Error).message}: list addresses or CIDRs` });
      return z.NEVER;
    }
    return list;
  });

const Env = BaseEnv.extend({
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  /** The API's bind address: `127.0.0.1` for this machine only; unset, every interface. */
  HOST: z.string().min(1).optional(),
  GATEWAY_DATABASE_URL: z.url().optional(),
  NODE_ENV: z.enum(["development", "production", "test"]).default("development"),
  JWT_SECRET: z
    .string()
    .min(
      SIGNING_KEY.minLength,
      `must be at least ${SIGNING_KEY.minLength} characters: set JWT_SECRET to a random value of ${SIGNING_KEY.minLength} characters or more, e.g. \`${SIGNING_KEY.generate}\``,
    )
    .optional(),
  MIKROM_ADMIN_EMAIL: z.email().optional(),
  MIKROM_ADMIN_PASSWORD: z.string().min(8).max(100).optional(),
  RATE_LIMIT_WINDOW_MS: int(60_000),
  RATE_LIMIT_PER_IP: int(1200),
  RATE_LIMIT_PER_USER: int(600),
  RATE_LIMIT_AUTH_PER_IP: int(30),
  LOGIN_FREE_FAILURES_PER_ACCOUNT: int(5),
  LOGIN_FREE_FAILURES_PER_IP: int(20),
  LOGIN_BLOCK_BASE_SECONDS: int(1),
  LOGIN_BLOCK_MAX_SECONDS: int(900),
  LOGIN_FAILURE_WINDOW_SECONDS: int(86_400),
  MAX_SSE_PER_USER: int(10),
  MAX_WAITS_PER_USER: int(20),
  CORS_ORIGINS: z.string().default("*"),
  COMMAND_TIMEOUT_MS: int(5_000),
  QUERY_TIMEOUT_MS: int(5_000),
  BODY_LIMIT_BYTES: int(1024 * 1024),
  SSE_HEARTBEAT_MS: int(15_000),
  TRUST_PROXY: trustedProxies,
  MIKROM_REGISTRATION: z.enum(REGISTRATION_MODES).optional(),
  // Empty is "not set", as a compose file's `GRAFANA_URL=` writes it.
  GRAFANA_URL: z.union([z.literal(""), z.url({ protocol: /^https?$/ })]).optional(),
});

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

/** `<base>_gateway` on the same server as DATABASE_URL: the gateway owns its own database. A base already naming it is kept. */
export function gatewayDatabaseUrl(baseUrl: string): string {
  const url = new URL(baseUrl);
  return url.pathname.endsWith("_gateway") ? url.toString() : serviceDatabaseUrl(baseUrl, "gateway");
}

/**
 * In production no secret may be a default, a placeholder from an example, or guessable: anyone who
 * knows the JWT secret signs tokens for any user, superusers included. Development takes what it
 * is given (and makes up a JWT secret when there is none).
 */
function productionSecretProblems(
  jwtSecret: string | undefined,
  adminPassword: string | undefined,
): string[] {
  const problems: string[] = [];
  if (!jwtSecret) {
    problems.push(
      `JWT_SECRET: required in production: set it to a random value, e.g. \`${SIGNING_KEY.generate}\``,
    );
  } else {
    const problem = secretProblem("JWT_SECRET", jwtSecret, SIGNING_KEY);
    if (problem) problems.push(problem);
  }
  if (adminPassword) {
    const problem = secretProblem("MIKROM_ADMIN_PASSWORD", adminPassword, PASSWORD);
    if (problem) problems.push(problem);
  }
  return problems;
}

/** Parses the environment, naming every missing or malformed variable at once. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  let e: z.infer<typeof Env>;
  try {
    e = parseEnv("api-gateway", Env, env);
  } catch (error) {
    // Callers and tests tell a bad environment from other start failures by this type.
    throw new ConfigError((error as Error).message, { cause: error });
  }
  if (e.NODE_ENV === "production") {
    const problems = productionSecretProblems(e.JWT_SECRET, e.MIKROM_ADMIN_PASSWORD);
    if (problems.length) {
      throw new ConfigError(`api-gateway configuration is invalid:\n  ${problems.join("\n  ")}`);
    }
  }
  if (Boolean(e.MIKROM_ADMIN_EMAIL) !== Boolean(e.MIKROM_ADMIN_PASSWORD)) {
    throw new ConfigError(
      "api-gateway configuration is invalid:\n  MIKROM_ADMIN_EMAIL and MIKROM_ADMIN_PASSWORD go together: set both or neither",
    );
  }
  return {
    port: e.PORT,
    host: e.HOST,
    natsUrl: e.NATS_URL,
    databaseUrl: e.GATEWAY_DATABASE_URL ?? gatewayDatabaseUrl(e.DATABASE_URL),
    namespace: e.MIKROM_NAMESPACE,
    streamReplicas: e.MIKROM_STREAM_REPLICAS,
    environment: e.NODE_ENV,
    jwtSecret: e.JWT_SECRET ?? randomBytes(32).toString("base64url"),
    jwtSecretGenerated: !e.JWT_SECRET,
    admin:
      e.MIKROM_ADMIN_EMAIL && e.MIKROM_ADMIN_PASSWORD
        ? { email: e.MIKROM_ADMIN_EMAIL, password: e.MIKROM_ADMIN_PASSWORD }
        : null,
    rateLimit: {
      windowMs: e.RATE_LIMIT_WINDOW_MS,
      perIp: e.RATE_LIMIT_PER_IP,
      perUser: e.RATE_LIMIT_PER_USER,
      authPerIp: e.RATE_LIMIT_AUTH_PER_IP,
    },
    login: {
      freeFailuresPerAccount: e.LOGIN_FREE_FAILURES_PER_ACCOUNT,
      freeFailuresPerIp: e.LOGIN_FREE_FAILURES_PER_IP,
      baseBlockSeconds: e.LOGIN_BLOCK_BASE_SECONDS,
      maxBlockSeconds: e.LOGIN_BLOCK_MAX_SECONDS,
      failureWindowSeconds: e.LOGIN_FAILURE_WINDOW_SECONDS,
    },
    concurrency: { ssePerUser: e.MAX_SSE_PER_USER, waitsPerUser: e.MAX_WAITS_PER_USER },
    corsOrigins: e.CORS_ORIGINS.split(",")
      .map((o) => o.trim())
      .filter(Boolean),
    commandTimeoutMs: e.COMMAND_TIMEOUT_MS,
    queryTimeoutMs: e.QUERY_TIMEOUT_MS,
    bodyLimitBytes: e.BODY_LIMIT_BYTES,
    sseHeartbeatMs: e.SSE_HEARTBEAT_MS,
    trustProxy: e.TRUST_PROXY,
    grafanaUrl: e.GRAFANA_URL ? e.GRAFANA_URL.replace(/\/+$/, "") : undefined,
    // A reachable production API open to anyone hands each stranger a VM quota: invitation there,
    // open sign-up on a developer's own machine (docs/SECURITY.md).
    registration: e.MIKROM_REGISTRATION ?? (e.NODE_ENV === "production" ? "invite" : "open"),
  };
}
