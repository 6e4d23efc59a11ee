import { type DatabaseStore, openMigratedDatabase, type ServiceDefinition } from "@mikrom/runtime";
import { errorFields } from "@mikrom/telemetry";
import { createApp } from "./app.ts";
import type { Config } from "./config.ts";
import { expireIdempotencyKeys } from "./http/idempotency.ts";
import { serveApi } from "./http/server.ts";
import { NatsBackend } from "./nats-backend.ts";
import type { GatewayDb } from "./store/db.ts";
import { migrate } from "./store/migrations.ts";

/**
 * The gateway on the skeleton: its own database (users, refresh tokens, idempotency keys), the
 * backend over NATS, and the HTTP server. It owns no consumer: commands go out, answers come back
 * on the events' subjects.
 */
export const gatewayService: ServiceDefinition<Config, DatabaseStore<GatewayDb>, object> = {
  name: "api-gateway",
  openStore: (config) =>
    openMigratedDatabase<GatewayDb>(
      config.databaseUrl,
      { max: 10, idleInTransactionTimeoutMs: 10_000, applicationName: "api-gateway" },
      migrate,
    ),
  async start({ config, nc, store: { db }, log, untilAvailable }) {
    if (config.jwtSecretGenerated) {
      log.warn("JWT_SECRET is not set: using a random secret; tokens will not survive a restart");
    }
    const backend = await NatsBackend.create(nc, config.namespace);
    const { app, accounts, commands, held } = createApp({ config, db, backend });
    commands.start();
    if (config.admin) {
      const { email, password } = config.admin;
      const result = await untilAvailable("the gateway's database", () =>
        accounts.ensureAdmin(email, password),
      );
      log.info({ email, result }, "First superuser checked");
    }

    const sweeper = setInterval(() => {
      Promise.all([expireIdempotencyKeys(db), commands.forgetSettled()]).catch((error: unknown) =>
        log.warn(errorFields(error), "Expiring idempotency keys and settled commands failed"),
      );
    }, 3_600_000);
    sweeper.unref();

    const server = serveApi(
      { fetch: app.fetch, port: config.port, ...(config.host && { hostname: config.host }) },
      (info) => {
        // What the socket is bound to, as the kernel says: `0.0.0.0` or `::` is every interface.
        const host = info.family === "IPv6" ? `[${info.address}]` : info.address;
        const every = info.address === "0.0.0.0" || info.address === "::" ? " (every interface)" : "";
        log.info(
          { host: info.address, port: info.port },
          `API gateway listening on http://${host}:${info.port}${every} (docs at /docs)`,
        );
      },
    );
    return {
      async stop() {
        clearInterval(sweeper);
        // Before the server waits for held requests to end: their slots are free for other replicas.
        await held.releaseAll();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await commands.stop();
      },
    };
  },
};
