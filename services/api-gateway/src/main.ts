import { serve } from "@hono/node-server";
import { connectNats, declareTopology } from "@mikrom/bus";
import { names } from "@mikrom/contracts";
import { createLogger, errorFields, startTelemetry } from "@mikrom/telemetry";
import { jetstreamManager } from "@nats-io/jetstream";
import { createApp, VERSION } from "./app.ts";
import { loadConfig } from "./config.ts";
import { expireIdempotencyKeys } from "./http/idempotency.ts";
import { NatsBackend } from "./nats-backend.ts";
import { ensureDatabase, openDatabase } from "./store/db.ts";
import { migrate } from "./store/migrations.ts";

const log = createLogger("mikrom.api-gateway");

async function main(): Promise<void> {
  const config = loadConfig();
  const telemetry = await startTelemetry({ serviceName: "api-gateway", serviceVersion: VERSION });
  if (config.jwtSecretGenerated) {
    log.warn("JWT_SECRET is not set: using a random secret; tokens will not survive a restart");
  }

  await ensureDatabase(config.databaseUrl);
  const db = openDatabase(config.databaseUrl);
  await migrate(db);

  const nc = await connectNats({ servers: config.natsUrl, name: `api-gateway ${process.pid}` });
  // The gateway owns no stream, but it must not fail its first publish because it started first:
  // declaring the streams is idempotent, and every service does it.
  await declareTopology(await jetstreamManager(nc), names(config.namespace));
  const backend = await NatsBackend.create(nc, config.namespace);
  const { app, accounts } = createApp({ config, db, backend });

  if (config.admin) {
    const result = await accounts.ensureAdmin(config.admin.email, config.admin.password);
    log.info({ email: config.admin.email, result }, "First superuser checked");
  }

  const sweeper = setInterval(() => {
    expireIdempotencyKeys(db).catch((error: unknown) =>
      log.warn(errorFields(error), "Expiring idempotency keys failed"),
    );
  }, 3_600_000);
  sweeper.unref();

  const server = serve({ fetch: app.fetch, port: config.port }, (info) => {
    log.info({ port: info.port }, `API gateway listening on http://127.0.0.1:${info.port} (docs at /docs)`);
  });

  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "Stopping");
    clearInterval(sweeper);
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await nc.drain().catch(() => undefined);
    await db.destroy();
    await telemetry.shutdown();
    process.exit(0);
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
}

main().catch((error: unknown) => {
  log.fatal(errorFields(error), "API gateway failed to start");
  process.exit(1);
});
