import { OpenAPIHono } from "@hono/zod-openapi";
import { isUnavailable } from "@mikrom/bus";
import { ValidationFailed } from "@mikrom/contracts";
import { createLogger, errorFields, httpTelemetry, type Logger } from "@mikrom/telemetry";
import { HTTPException } from "hono/http-exception";
import type { Kysely } from "kysely";
import { Accounts } from "./auth/accounts.ts";
import { authenticate, identify } from "./auth/middleware.ts";
import { Tokens } from "./auth/tokens.ts";
import { type Backend, BackendUnavailable } from "./backend.ts";
import { Commands } from "./commands/dispatcher.ts";
import type { Config } from "./config.ts";
import { mountConsole } from "./console/index.ts";
import { bodyLimit } from "./http/body-limit.ts";
import type { AppEnv, GatewayApp } from "./http/env.ts";
import { idempotency } from "./http/idempotency.ts";
import { Problem, problemResponse } from "./http/problem.ts";
import { clientAddress, clientIp, corsPolicy, securityHeaders } from "./http/security.ts";
import { validationHook } from "./http/validate.ts";
import { HeldRequests } from "./limits/concurrency.ts";
import { LoginThrottle } from "./limits/login-throttle.ts";
import { limitPerCaller, limitPerIp } from "./limits/rate-limit.ts";
import { sharedLimiter } from "./limits/store.ts";
import { auditRoutes } from "./routes/audit.ts";
import { authRoutes } from "./routes/auth.ts";
import { docsRoutes } from "./routes/docs.ts";
import { eventRoutes } from "./routes/events.ts";
import { healthRoutes } from "./routes/health.ts";
import { hostRoutes } from "./routes/hosts.ts";
import { ippoolRoutes } from "./routes/ippools/index.ts";
import { userRoutes } from "./routes/users.ts";
import { vmRoutes } from "./routes/vms/index.ts";
import type { GatewayDb } from "./store/db.ts";
import { InviteStore } from "./store/invites.ts";
import { RefreshTokenStore } from "./store/refresh-tokens.ts";
import { UserStore } from "./store/users.ts";

export const VERSION = "0.1.0";

/** What the gateway needs from outside; tests pass their own (a test database, a test namespace). */
export interface GatewayDeps {
  readonly config: Pick<
    Config,
    | "jwtSecret"
    | "rateLimit"
    | "login"
    | "concurrency"
    | "corsOrigins"
    | "commandTimeoutMs"
    | "queryTimeoutMs"
    | "bodyLimitBytes"
    | "sseHeartbeatMs"
    | "trustProxy"
    | "grafanaUrl"
    | "registration"
  >;
  readonly db: Kysely<GatewayDb>;
  readonly backend: Backend;
  readonly logger?: Logger;
  /** The clock for tokens (tests move it to expire them). */
  readonly now?: () => number;
}

export interface Gateway {
  readonly app: GatewayApp;
  readonly accounts: Accounts;
  /** Start it to watch outcomes and re-send what has none; stop it before the database closes. */
  readonly commands: Commands;
  /** The slots of held requests (SSE, `/wait`): give them back before the database closes. */
  readonly held: HeldRequests;
}

export function createApp(deps: GatewayDeps): Gateway {
  const { config, db, backend } = deps;
  const log = deps.logger ?? createLogger("mikrom.api-gateway");
  const users = new UserStore(db);
  const tokens = new Tokens(config.jwtSecret, deps.now);
  const refreshTokens = new RefreshTokenStore(db);
  const accounts = new Accounts(users, refreshTokens, tokens, new InviteStore(db));
  // Every route's inputs are validated by its definition; what they refuse is a 422 problem document.
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  const commands = new Commands(db, backend, { timeoutMs: config.commandTimeoutMs });

  // One answer to "who is the client" for the request log and the limits alike.
  const addressOf = clientAddress(config.trustProxy);
  app.use(httpTelemetry({ logger: createLogger("mikrom.api-gateway.http"), clientAddress: addressOf }));
  app.use(securityHeaders());
  app.use(corsPolicy(config.corsOrigins));
  app.use(clientIp(addressOf));
  // Counted in the gateway's database: every replica sees the same counts.
  const window = Math.max(1, Math.round(config.rateLimit.windowMs / 1000));
  const limiter = (prefix: string, points: number) =>
    sharedLimiter(db, { prefix, points, durationSeconds: window, blockInMemory: true });
  app.use(identify(tokens));
  app.use(limitPerCaller(limiter("user", config.rateLimit.perUser), limiter("ip", config.rateLimit.perIp)));
  const credentials = limitPerIp(limiter("auth-ip", config.rateLimit.authPerIp));
  for (const path of [
    "/api/v1/auth/login",
    "/api/v1/auth/login/json",
    "/api/v1/auth/register",
    "/api/v1/auth/refresh",
  ]) {
    app.post(path, credentials);
  }
  app.use(
    bodyLimit({
      maxSize: config.bodyLimitBytes,
      // The rest of the body is still on its way and will not be read: the connection cannot carry
      // another request, so the answer says so instead of promising keep-alive and then closing.
      onError: () => {
        throw new Problem(413, `Request body is larger than ${config.bodyLimitBytes} bytes`, {
          headers: { Connection: "close" },
        });
      },
    }),
  );
  app.use(authenticate(users));
  // A claim outlives the longest request that can hold it: a command's wait and two queries.
  app.use(
    "/api/*",
    idempotency(db, { leaseMs: config.commandTimeoutMs + 2 * config.queryTimeoutMs + 5_000 }),
  );

  healthRoutes(app, { db, backend });
  authRoutes(app, accounts, new LoginThrottle(db, config.login), config.registration);
  userRoutes(app, { users, vms: { backend, commands, queryTimeoutMs: config.queryTimeoutMs } });
  // A held request's slot is asked for again after about the time a short one takes.
  const held = new HeldRequests(db);
  vmRoutes(app, {
    backend,
    commands,
    queryTimeoutMs: config.queryTimeoutMs,
    waits: held.cap("waits", config.concurrency.waitsPerUser, 1),
  });
  eventRoutes(app, {
    backend,
    heartbeatMs: config.sseHeartbeatMs,
    queryTimeoutMs: config.queryTimeoutMs,
    streams: held.cap("event streams", config.concurrency.ssePerUser, 5),
  });
  ippoolRoutes(app, { backend, commands, queryTimeoutMs: config.queryTimeoutMs });
  auditRoutes(app, { backend, queryTimeoutMs: config.queryTimeoutMs });
  hostRoutes(app, { backend, queryTimeoutMs: config.queryTimeoutMs });
  docsRoutes(app, VERSION);
  mountConsole(app, { jwtSecret: config.jwtSecret, grafanaUrl: config.grafanaUrl });

  app.notFound((c) => problemResponse(c, new Problem(404, `No route for ${c.req.method} ${c.req.path}`)));
  app.onError((error, c) => {
    if (error instanceof Problem) return problemResponse(c, error);
    // What the contract refuses (a NUL in a name, say) is the caller's to fix, never a 500.
    if (error instanceof ValidationFailed) return problemResponse(c, new Problem(422, error.message));
    // A dependency away (NATS, the owning service, the gateway's own database) is "retry later",
    // never a 500: the client cannot tell a bug from a restart otherwise.
    if (error instanceof BackendUnavailable || isUnavailable(error)) {
      log.warn(errorFields(error), "Dependency unavailable");
      return problemResponse(
        c,
        new Problem(503, "The service is unavailable; retry later", { headers: { "Retry-After": "1" } }),
      );
    }
    if (error instanceof HTTPException) {
      const status = error.status >= 400 && error.status < 600 ? error.status : 500;
      return problemResponse(c, new Problem(status as Problem["status"], error.message || "Request failed"));
    }
    log.error(errorFields(error), "Unhandled error");
    return problemResponse(c, new Problem(500, "Internal server error"));
  });

  return { app, accounts, commands, held };
}
