import type { AddressInfo } from "node:net";
import { openDatabase } from "@mikrom/runtime";
import { setLogDestination } from "@mikrom/telemetry";
import { createApp, type GatewayDeps } from "../../src/app.ts";
import type { Accounts } from "../../src/auth/accounts.ts";
import { type Backend, BackendUnavailable } from "../../src/backend.ts";
import { type ClientTimeouts, serveApi } from "../../src/http/server.ts";
import type { GatewayDb } from "../../src/store/db.ts";
import { migrate } from "../../src/store/migrations.ts";

// Thousands of request logs would bury the test report;
// the telemetry test captures its own. Set GATEWAY_TEST_LOGS=1 to see them while debugging.
if (!process.env.GATEWAY_TEST_LOGS) setLogDestination({ write: () => true });

export const TEST_CONFIG: GatewayDeps["config"] = {
  jwtSecret: "test-secret-test-secret-test-secret-0123",
  rateLimit: { windowMs: 60_000, perIp: 100_000, perUser: 100_000, authPerIp: 100_000 },
  login: {
    freeFailuresPerAccount: 1000,
    freeFailuresPerIp: 1000,
    baseBlockSeconds: 1,
    maxBlockSeconds: 60,
    failureWindowSeconds: 3600,
  },
  concurrency: { ssePerUser: 100, waitsPerUser: 100 },
  corsOrigins: ["https://app.example"],
  commandTimeoutMs: 3_000,
  queryTimeoutMs: 2_000,
  bodyLimitBytes: 64 * 1024,
  sseHeartbeatMs: 200,
  // The tests reach the gateway over loopback and say which client they play in X-Forwarded-For.
  trustProxy: ["loopback"],
  registration: "open",
};

/** A backend for tests that need no NATS: every query and command finds the services down. */
export const offlineBackend: Backend = {
  publish: async () => {
    throw new BackendUnavailable("offline");
  },
  onEvent: () => () => {},
  query: async () => ({ ok: false, error: { code: "unavailable", message: "offline" } }),
  events: async () => {
    throw new Error("offline");
  },
  ready: async () => false,
};

/** Test assertions walk arbitrary JSON bodies. */
// biome-ignore lint/suspicious/noExplicitAny: the shape is what the assertions check
export type Json = any;
export interface JsonResponse extends Response {
  json(): Promise<Json>;
}

export interface Session {
  readonly id: number;
  readonly email: string;
  readonly username: string;
  readonly token: string;
  readonly refresh: string;
  readonly auth: { Authorization: string };
}

export interface RunningGateway {
  readonly url: string;
  readonly accounts: Accounts;
  fetch(path: string, init?: RequestInit): Promise<JsonResponse>;
  /** POSTs JSON; `headers` are merged over the JSON content type. */
  post(path: string, body: unknown, headers?: Record<string, string>): Promise<JsonResponse>;
  user(name: string, options?: { superuser?: boolean }): Promise<Session>;
  close(): Promise<void>;
}

let counter = 0;

/** The gateway on a real loopback port, over a test database, with the backend given. */
export async function startGateway(
  dbUrl: string,
  options: {
    backend?: Backend;
    config?: Partial<GatewayDeps["config"]>;
    now?: () => number;
    clientTimeouts?: ClientTimeouts;
    /** Called once for each statement the gateway's database answers. */
    onStatement?: () => void;
  } = {},
): Promise<RunningGateway> {
  const pooled = openDatabase<GatewayDb>(dbUrl, { max: 5 });
  const { onStatement } = options;
  const db = onStatement
    ? pooled.withPlugin({
        transformQuery: (args) => args.node,
        transformResult: async (args) => {
          onStatement();
          return args.result;
        },
      })
    : pooled;
  await migrate(db);
  const { app, accounts, commands, held } = createApp({
    config: { ...TEST_CONFIG, ...options.config },
    db,
    backend: options.backend ?? offlineBackend,
    ...(options.now && { now: options.now }),
  });
  commands.start();
  const server = serveApi(
    { fetch: app.fetch, port: 0, hostname: "127.0.0.1" },
    undefined,
    options.clientTimeouts,
  );
  await new Promise<void>((resolve) => server.once("listening", () => resolve()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const doFetch = (path: string, init?: RequestInit) => fetch(`${url}${path}`, init);
  return {
    url,
    accounts,
    fetch: doFetch,
    post: (path, body, headers = {}) =>
      doFetch(path, {
        method: "POST",
        headers: { "Content-Type": "application/json", ...headers },
        body: typeof body === "string" ? body : JSON.stringify(body),
      }),
    async user(name, opts = {}) {
      const email = `${name}-${++counter}@example.com`;
      const row = await accounts.register(
        { email, password: "correct horse battery", username: `${name}${counter}` },
        opts.superuser ?? false,
      );
      const tokens = await accounts.issue(row);
      return {
        id: row.id,
        email,
        username: row.username,
        token: tokens.access_token,
        refresh: tokens.refresh_token,
        auth: { Authorization: `Bearer ${tokens.access_token}` },
      };
    },
    async close() {
      // As the service stops: the slots go back before the streams holding them are cut.
      await held.releaseAll();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await commands.stop();
      await db.destroy();
    },
  };
}

/** Asserts-friendly view of a problem response. */
export async function problemOf(
  res: Response,
): Promise<{ status: number; type: string | null; body: Record<string, unknown> }> {
  return {
    status: res.status,
    type: res.headers.get("content-type"),
    body: (await res.json()) as Record<string, unknown>,
  };
}
