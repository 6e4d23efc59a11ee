import { Hono } from "hono";
import type { AppEnv } from "../http/env.ts";
import { Api } from "./api.ts";
import { assetRoutes } from "./assets.ts";
import { adminPages } from "./pages/admin.ts";
import { authPages } from "./pages/auth.ts";
import type { ConsoleDeps } from "./pages/context.ts";
import { consoleErrors } from "./pages/errors.ts";
import { eventStream } from "./pages/events.ts";
import { vmPages } from "./pages/vms.ts";
import { Sessions } from "./session.ts";

export interface ConsoleOptions {
  /** The gateway's JWT secret: the console derives its CSRF and message keys from it. */
  readonly jwtSecret: string;
  /** Trace ids link to Grafana when set. */
  readonly grafanaUrl?: string | undefined;
}

/**
 * The web console at `/`: server-rendered pages over the gateway's own API, called in-process with
 * the signed-in user's token. Mount it after the API's routes, so it sees the same middleware.
 */
export function mountConsole(app: Hono<AppEnv>, options: ConsoleOptions): void {
  const api = new Api((request, env) => app.fetch(request, env));
  const deps: ConsoleDeps = {
    api,
    sessions: new Sessions(api, options.jwtSecret),
    grafanaUrl: options.grafanaUrl,
  };
  const ui = new Hono<AppEnv>();
  ui.onError(consoleErrors(deps));
  assetRoutes(ui);
  authPages(ui, deps);
  vmPages(ui, deps);
  adminPages(ui, deps);
  eventStream(ui, deps);
  app.route("/", ui);
}
