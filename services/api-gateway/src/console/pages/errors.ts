import { isUnavailable } from "@mikrom/bus";
import { createLogger, errorFields } from "@mikrom/telemetry";
import type { Context, ErrorHandler } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { BackendUnavailable } from "../../backend.ts";
import type { AppEnv } from "../../http/env.ts";
import { Problem, problemResponse } from "../../http/problem.ts";
import { ApiError } from "../api.ts";
import { localPath } from "../format.ts";
import { renderPage } from "../html.ts";
import { errorPage } from "../views/auth.ts";
import { layout } from "../views/layout.ts";
import { type ConsoleDeps, LoginRequired, wantsJson } from "./context.ts";

const log = createLogger("mikrom.api-gateway.console");

/** Status and words for what went wrong, whoever threw it. */
function describe(error: unknown): {
  status: ContentfulStatusCode;
  detail: string;
  headers: Record<string, string>;
} {
  if (error instanceof Problem)
    return { status: error.status, detail: error.message, headers: error.headers };
  if (error instanceof ApiError) {
    const retry = error.headers.get("retry-after");
    return {
      status: error.status as ContentfulStatusCode,
      detail: error.message,
      headers: retry ? { "Retry-After": retry } : {},
    };
  }
  if (error instanceof BackendUnavailable || isUnavailable(error))
    return {
      status: 503,
      detail: "The service is unavailable; retry later",
      headers: { "Retry-After": "1" },
    };
  log.error(errorFields(error), "Console page failed");
  return { status: 500, detail: "Internal server error", headers: {} };
}

/**
 * The console's errors: a login page for a browser without a session, an error page for a browser,
 * and the API's problem documents for the console's script and any other client.
 */
export function consoleErrors(deps: ConsoleDeps): ErrorHandler<AppEnv> {
  return async (error, c: Context<AppEnv>) => {
    if (error instanceof LoginRequired) {
      if (wantsJson(c)) return problemResponse(c, new Problem(401, "Log in first", { headers: {} }));
      const here = c.req.method === "GET" ? localPath(c.req.path + new URL(c.req.url).search) : "/";
      return c.redirect(here === "/" ? "/login" : `/login?next=${encodeURIComponent(here)}`, 303);
    }
    const { status, detail, headers } = describe(error);
    if (wantsJson(c)) return problemResponse(c, new Problem(status, detail, { headers }));
    for (const [name, value] of Object.entries(headers)) c.header(name, value);
    const shell = { title: "Error", csrf: deps.sessions.csrf(c) };
    return renderPage(c, layout(shell, errorPage(status, detail)), status);
  };
}
