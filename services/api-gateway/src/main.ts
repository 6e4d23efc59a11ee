import { serve } from "@hono/node-server";
import { connectNats, declareTopology } from "@mikrom/bus";
import { names } from "@mikrom/contracts";
import { ensureDatabase, runService } from "@mikrom/runtime";
import { createLogger, errorFields } from "@mikrom/telemetry";
import { jetstreamManager } from "@nats-io/jetstream";
import { createApp } from "./app.ts";
import { loadConfig } from "./config.ts";
import { expireIdempotencyKeys } from "./http/idempotency.ts";
import { NatsBackend } from "./nats-backend.ts";
import { openDatabase } from "./store/db.ts";
import { migrate } from "./store/migrations.ts";

const log = createLogger("mikrom.api-gateway");

await runService("api-gateway", async () => {
  const config = loadConfig();
  if (config.jwtSecretGenerated) {
    log.warn("JWT_SECRET is not set: using a random secret; tokens will not survive a restart");
  }

  await ensureDatabase(config.databaseUrl);
  const db = openDatabase(config.databaseUrl);
  await migrate(db);

  const nc = await connectNats({ servers: config.natsUrl, name: `api-gateway ${process.pid}` });
  // The gateway owns no stream, but it must not fail its first publish because it started first:
  // declaring the streams is idempotent, and every service does it.
  await declareTopology(await jetstreamManager(nc), names(config.namespace), {
    replicas: config.streamReplicas,
  });
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

  return {
    async stop() {
      clearInterval(sweeper);
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await nc.drain().catch(() => undefined);
      await db.destroy();
    },
  };
});
