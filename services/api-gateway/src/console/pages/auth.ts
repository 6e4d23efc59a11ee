import type { Hono } from "hono";
import type { AppEnv } from "../../http/env.ts";
import { ApiError } from "../api.ts";
import type { Tokens } from "../api-types.ts";
import { localPath } from "../format.ts";
import { renderPage } from "../html.ts";
import { loginPage, registerPage } from "../views/auth.ts";
import { layout } from "../views/layout.ts";
import { type ConsoleDeps, formOf, shellOf } from "./context.ts";

/** Why the API refused, as a person at a login form should read it. */
function refusal(error: unknown): string {
  if (!(error instanceof ApiError)) throw error;
  if (error.status === 429)
    return `Too many attempts; try again in ${error.headers.get("retry-after") ?? "a few"} seconds.`;
  return error.message;
}

/** Log in, register and log out: the API's own routes, the tokens kept in the session's cookies. */
export function authPages(app: Hono<AppEnv>, deps: ConsoleDeps): void {
  const { api, sessions } = deps;

  app.get("/login", async (c) => {
    const next = localPath(c.req.query("next"));
    if (await sessions.token(c)) return c.redirect(next, 303);
    return renderPage(c, layout(shellOf(c, deps, "Log in", undefined), loginPage(sessions.csrf(c), next)));
  });

  app.post("/login", async (c) => {
    const form = await formOf(c);
    sessions.verify(c, form._csrf);
    const next = localPath(form.next);
    const login = form.username?.trim() ?? "";
    try {
      const tokens = await api.json<Tokens>(c, "POST", "/api/v1/auth/login/json", {
        body: { username: login, password: form.password ?? "" },
      });
      sessions.start(c, tokens);
      return c.redirect(next, 303);
    } catch (error) {
      const page = loginPage(sessions.csrf(c), next, login, refusal(error));
      return renderPage(c, layout(shellOf(c, deps, "Log in", undefined), page));
    }
  });

  app.get("/register", async (c) => {
    if (await sessions.token(c)) return c.redirect("/", 303);
    return renderPage(
      c,
      layout(shellOf(c, deps, "Create an account", undefined), registerPage(sessions.csrf(c))),
    );
  });

  app.post("/register", async (c) => {
    const form = await formOf(c);
    sessions.verify(c, form._csrf);
    const values = {
      email: form.email?.trim(),
      name: form.name?.trim() || undefined,
      invite: form.invite?.trim() || undefined,
    };
    try {
      const tokens = await api.json<Tokens>(c, "POST", "/api/v1/auth/register", {
        body: {
          email: values.email ?? "",
          password: form.password ?? "",
          ...(values.name && { name: values.name }),
          ...(values.invite && { invite_token: values.invite }),
        },
      });
      sessions.start(c, tokens);
      sessions.flash(c, { kind: "info", text: `Welcome, ${tokens.user.name}.` });
      return c.redirect("/", 303);
    } catch (error) {
      const page = registerPage(sessions.csrf(c), values, refusal(error));
      return renderPage(c, layout(shellOf(c, deps, "Create an account", undefined), page));
    }
  });

  app.post("/logout", async (c) => {
    const form = await formOf(c);
    sessions.verify(c, form._csrf);
    // The API ends the tokens too, not only this browser's cookies: a copy of them stops working.
    const token = await sessions.token(c).catch(() => undefined);
    if (token) await api.request(c, "POST", "/api/v1/auth/logout", { token }).catch(() => undefined);
    sessions.end(c);
    sessions.flash(c, { kind: "info", text: "You are logged out." });
    return c.redirect("/login", 303);
  });
}
