import type { Context } from "hono";
import { type Api, ApiError } from "../api.ts";
import type { Me } from "../api-types.ts";
import type { Sessions } from "../session.ts";
import type { Shell } from "../views/layout.ts";

export interface ConsoleDeps {
  readonly api: Api;
  readonly sessions: Sessions;
  readonly grafanaUrl: string | undefined;
}

/** No session (or one the API no longer accepts): the browser goes to the login page. */
export class LoginRequired extends Error {
  override readonly name = "LoginRequired";
}

export interface SignedIn {
  readonly token: string;
  readonly me: Me;
}

/** The signed-in user, as the API knows them (`GET /auth/me`); LoginRequired otherwise. */
export async function signedIn(c: Context, deps: ConsoleDeps): Promise<SignedIn> {
  const token = await deps.sessions.token(c);
  if (!token) throw new LoginRequired();
  try {
    return { token, me: await deps.api.get<Me>(c, "/api/v1/auth/me", token) };
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      deps.sessions.end(c);
      throw new LoginRequired();
    }
    throw error;
  }
}

/** The console's own script asks for JSON; a browser navigating asks for HTML. */
export function wantsJson(c: Context): boolean {
  const accept = c.req.header("accept") ?? "";
  return accept.includes("application/json") || !accept.includes("text/html");
}

export function shellOf(
  c: Context,
  deps: ConsoleDeps,
  title: string,
  me: Me | undefined,
  extra: Partial<Pick<Shell, "section" | "live">> = {},
): Shell {
  return { title, me, csrf: deps.sessions.csrf(c), flash: deps.sessions.takeFlash(c), ...extra };
}

/** A form's fields (url-encoded or multipart), strings only. */
export async function formOf(c: Context): Promise<Record<string, string>> {
  const body = await c.req.parseBody();
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(body)) if (typeof v === "string") out[k] = v;
  return out;
}

/** A page number from the query string; the API checks the upper bound. */
export function pageParam(raw: string | undefined): number {
  const n = Number(raw);
  return Number.isSafeInteger(n) && n >= 1 ? n : 1;
}
