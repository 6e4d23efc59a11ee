/**
 * The REST client of the chaos load: every call ends with an answer, never an exception, so that a
 * refused connection or a timeout is recorded like any status (status 0, with the cause).
 */

// biome-ignore lint/suspicious/noExplicitAny: response bodies of every route; callers read the fields they need
export type Json = any;

export interface Answer {
  /** The HTTP status, or 0 when no answer came (connection refused or reset, timeout). */
  readonly status: number;
  readonly body: Json;
  /** The Retry-After header, when the answer had one. */
  readonly retryAfter: string | null;
  readonly replayed: boolean;
  /** Why no answer came (status 0). */
  readonly error?: string;
  readonly ms: number;
}

export interface CallOptions {
  readonly token?: string;
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
  readonly timeoutMs?: number;
  /** Aborts the call at once (the run is being stopped). */
  readonly signal?: AbortSignal;
}

export async function call(
  api: string,
  method: string,
  path: string,
  opts: CallOptions = {},
): Promise<Answer> {
  const started = performance.now();
  const timeout = AbortSignal.timeout(opts.timeoutMs ?? 20_000);
  try {
    const res = await fetch(`${api}${path}`, {
      method,
      headers: {
        ...(opts.body !== undefined && { "content-type": "application/json" }),
        ...(opts.token && { authorization: `Bearer ${opts.token}` }),
        ...opts.headers,
      },
      ...(opts.body !== undefined && { body: JSON.stringify(opts.body) }),
      signal: opts.signal ? AbortSignal.any([timeout, opts.signal]) : timeout,
    });
    const text = await res.text();
    let body: Json;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = { unparsed: text.slice(0, 500) };
    }
    return {
      status: res.status,
      body,
      retryAfter: res.headers.get("retry-after"),
      replayed: res.headers.get("idempotent-replayed") === "true",
      ms: Math.round(performance.now() - started),
    };
  } catch (error) {
    return {
      status: 0,
      body: undefined,
      retryAfter: null,
      replayed: false,
      error: causeOf(error),
      ms: Math.round(performance.now() - started),
    };
  }
}

/** `fetch failed` says nothing: the cause's code (ECONNREFUSED, UND_ERR_SOCKET, …) or the timeout does. */
function causeOf(error: unknown): string {
  const e = error as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e.name === "TimeoutError") return "timeout";
  if (e.name === "AbortError") return "aborted";
  return e.cause?.code ?? e.cause?.message ?? e.message ?? String(error);
}

/** Seconds of a Retry-After header as milliseconds, bounded (a client never waits long on a hint). */
export function retryAfterMs(header: string | null, fallbackMs: number, maxMs = 5_000): number {
  const seconds = header === null ? Number.NaN : Number(header);
  return Number.isFinite(seconds) && seconds >= 0 ? Math.min(maxMs, seconds * 1000) : fallbackMs;
}
