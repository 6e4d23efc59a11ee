import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { Context } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { decodeJwt } from "jose";
import { Problem } from "../http/problem.ts";
import { type Api, ApiError } from "./api.ts";
import type { Tokens } from "./api-types.ts";

const ACCESS = "mikrom_access";
const REFRESH = "mikrom_refresh";
const CSRF = "mikrom_csrf";
const FLASH = "mikrom_flash";
const SEED = /^[A-Za-z0-9_-]{43}$/;

/** As long as the refresh token lives: the access token inside is renewed before it expires. */
const SESSION_MAX_AGE_S = 7 * 24 * 3600;
/** Renew the access token when it has less than this left, so no API call meets an expired one. */
const RENEW_BEFORE_S = 60;
/**
 * A refresh token is spent by its first use and presenting it again revokes the user's every token:
 * requests of one browser arriving together (a page, its event stream) share one refresh, and a
 * request that comes a moment later with the old cookie gets the same answer.
 */
const SHARED_REFRESH_MS = 30_000;

export interface Flash {
  readonly kind: "info" | "error";
  readonly text: string;
}

/**
 * The browser's session: the API's own access and refresh tokens, each in an HttpOnly,
 * SameSite=Strict cookie that scripts cannot read and other sites cannot send; Secure over HTTPS.
 * Forms carry a CSRF token, an HMAC of a random cookie under a key derived from the gateway's secret.
 */
export class Sessions {
  readonly #api: Api;
  readonly #key: Buffer;
  readonly #now: () => number;
  readonly #refreshing = new Map<string, Promise<Tokens | undefined>>();
  readonly #seeds = new WeakMap<Request, string>();

  constructor(api: Api, secret: string, now: () => number = Date.now) {
    this.#api = api;
    this.#key = createHmac("sha256", secret).update("mikrom web console").digest();
    this.#now = now;
  }

  /** The access token to call the API with (renewed when about to expire); none: log in first. */
  async token(c: Context): Promise<string | undefined> {
    const access = getCookie(c, ACCESS);
    if (access && this.#secondsLeft(access) > RENEW_BEFORE_S) return access;
    const refresh = getCookie(c, REFRESH);
    if (!refresh) return undefined;
    let shared = this.#refreshing.get(refresh);
    if (!shared) {
      shared = this.#api
        .json<Tokens>(c, "POST", "/api/v1/auth/refresh", { body: { refresh_token: refresh } })
        .catch((error: unknown) => {
          if (error instanceof ApiError && (error.status === 401 || error.status === 403)) return undefined;
          throw error;
        });
      this.#refreshing.set(refresh, shared);
      setTimeout(() => this.#refreshing.delete(refresh), SHARED_REFRESH_MS).unref();
    }
    const tokens = await shared;
    if (!tokens) {
      this.end(c);
      return undefined;
    }
    this.start(c, tokens);
    return tokens.access_token;
  }

  start(c: Context, tokens: Tokens): void {
    setCookie(c, ACCESS, tokens.access_token, this.#options(c, SESSION_MAX_AGE_S));
    setCookie(c, REFRESH, tokens.refresh_token, this.#options(c, SESSION_MAX_AGE_S));
  }

  end(c: Context): void {
    for (const name of [ACCESS, REFRESH]) deleteCookie(c, name, { path: "/", secure: isHttps(c) });
  }

  /** The CSRF token for the forms of this page (the cookie it is bound to is set when missing). */
  csrf(c: Context): string {
    // A seed set by this response is the one its forms must carry, not the request's (absent) cookie.
    let seed = this.#seeds.get(c.req.raw) ?? getCookie(c, CSRF);
    if (!seed || !SEED.test(seed)) {
      seed = randomBytes(32).toString("base64url");
      setCookie(c, CSRF, seed, this.#options(c, SESSION_MAX_AGE_S));
      this.#seeds.set(c.req.raw, seed);
    }
    return this.#sign(`csrf:${seed}`);
  }

  /**
   * Refuses a form or script POST that another site could have sent: from a cross-site context (the
   * browser says so in Sec-Fetch-Site and Origin) or without this browser's CSRF token.
   */
  verify(c: Context, submitted: string | undefined): void {
    const site = c.req.header("sec-fetch-site");
    if (site && site !== "same-origin" && site !== "none") throw forbidden();
    const origin = c.req.header("origin");
    // "null" is what a browser sends when the referrer policy hides the origin (no-referrer here).
    if (origin && origin !== "null" && hostOf(origin) !== c.req.header("host")) throw forbidden();
    const seed = getCookie(c, CSRF);
    if (!seed || !submitted || !equal(submitted, this.#sign(`csrf:${seed}`))) throw forbidden();
  }

  flash(c: Context, flash: Flash): void {
    const value = Buffer.from(JSON.stringify(flash)).toString("base64url");
    setCookie(c, FLASH, `${value}.${this.#sign(`flash:${value}`)}`, this.#options(c, 60));
  }

  /** The message a redirect left for this page, once. */
  takeFlash(c: Context): Flash | undefined {
    const cookie = getCookie(c, FLASH);
    if (!cookie) return undefined;
    deleteCookie(c, FLASH, { path: "/", secure: isHttps(c) });
    const [value = "", mac = ""] = cookie.split(".");
    if (!equal(mac, this.#sign(`flash:${value}`))) return undefined;
    try {
      const flash = JSON.parse(Buffer.from(value, "base64url").toString()) as Flash;
      return (flash.kind === "info" || flash.kind === "error") && typeof flash.text === "string"
        ? flash
        : undefined;
    } catch {
      return undefined;
    }
  }

  #secondsLeft(token: string): number {
    try {
      const { exp } = decodeJwt(token);
      return typeof exp === "number" ? exp - this.#now() / 1000 : 0;
    } catch {
      return 0;
    }
  }

  #sign(value: string): string {
    return createHmac("sha256", this.#key).update(value).digest("base64url");
  }

  #options(c: Context, maxAge: number) {
    return { httpOnly: true, sameSite: "Strict", path: "/", secure: isHttps(c), maxAge } as const;
  }
}

/** Over HTTPS, directly or behind a proxy that says so: cookies are then Secure. */
function isHttps(c: Context): boolean {
  return new URL(c.req.url).protocol === "https:" || c.req.header("x-forwarded-proto") === "https";
}

function hostOf(origin: string): string | undefined {
  try {
    return new URL(origin).host;
  } catch {
    return undefined;
  }
}

function equal(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

const forbidden = (): Problem =>
  new Problem(403, "This form has expired or did not come from this console: reload the page and try again");
