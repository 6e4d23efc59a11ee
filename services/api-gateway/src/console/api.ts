import { getContext, injectCarrier } from "@mikrom/telemetry";
import type { Context } from "hono";

/** How the console reaches the API: the gateway's own `fetch`, called in-process. */
export type ApiFetch = (request: Request, env: unknown) => Response | Promise<Response>;

/** The API's answer was an error: its status and problem `detail`, as the API said them. */
export class ApiError extends Error {
  override readonly name = "ApiError";
  readonly status: number;
  readonly headers: Headers;

  constructor(status: number, detail: string, headers: Headers) {
    super(detail);
    this.stack = undefined;
    this.status = status;
    this.headers = headers;
  }
}

export interface CallOptions {
  readonly token?: string | undefined;
  readonly body?: unknown;
  readonly idempotencyKey?: string | undefined;
  readonly lastEventId?: string | undefined;
  readonly signal?: AbortSignal | undefined;
}

/** Request headers that describe the client, passed on so the API sees the same one. */
const PASSED_ON = ["user-agent", "x-forwarded-for", "x-real-ip"];

/**
 * The console is a client of the gateway's REST API like any other: every page and action is one or
 * more API calls with the user's own token, so authorization, validation, idempotency and rate limits
 * are the API's, decided once. The calls stay in the process (no socket) and carry the browser
 * request's connection (the per-IP limit sees the browser), its request id and its trace.
 */
export class Api {
  readonly #fetch: ApiFetch;

  constructor(fetch: ApiFetch) {
    this.#fetch = fetch;
  }

  /** The raw response (the event stream is passed through as it is). */
  async request(c: Context, method: string, path: string, options: CallOptions = {}): Promise<Response> {
    const headers: Record<string, string> = { accept: "application/json" };
    for (const name of PASSED_ON) {
      const value = c.req.header(name);
      if (value) headers[name] = value;
    }
    const requestId = getContext().request_id;
    if (requestId) headers["x-request-id"] = requestId;
    injectCarrier(headers);
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    if (options.idempotencyKey) headers["idempotency-key"] = options.idempotencyKey;
    if (options.lastEventId) headers["last-event-id"] = options.lastEventId;
    if (options.body !== undefined) headers["content-type"] = "application/json";
    const request = new Request(new URL(path, c.req.url), {
      method,
      headers,
      ...(options.body !== undefined && { body: JSON.stringify(options.body) }),
      ...(options.signal && { signal: options.signal }),
    });
    return this.#fetch(request, c.env);
  }

  /** The JSON body of a 2xx answer; any other answer is an ApiError with the API's own detail. */
  async json<T>(c: Context, method: string, path: string, options: CallOptions = {}): Promise<T> {
    const res = await this.request(c, method, path, options);
    const text = await res.text();
    const body: unknown = text ? parse(text) : undefined;
    if (!res.ok)
      throw new ApiError(res.status, detailOf(body) ?? `${res.status} ${res.statusText}`, res.headers);
    return body as T;
  }

  get<T>(c: Context, path: string, token: string): Promise<T> {
    return this.json<T>(c, "GET", path, { token });
  }
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function detailOf(body: unknown): string | undefined {
  if (typeof body === "object" && body !== null && typeof (body as { detail?: unknown }).detail === "string")
    return (body as { detail: string }).detail;
  return undefined;
}
