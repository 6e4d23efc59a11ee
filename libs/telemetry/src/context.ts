import { type Context, context, createContextKey, ROOT_CONTEXT } from "@opentelemetry/api";

/**
 * The per-operation fields every log line carries. They travel between processes as W3C baggage (see
 * propagation.ts), so a service three hops away logs the user who asked without looking them up.
 *
 * Inside a process they live in the OpenTelemetry context, which the AsyncLocalStorage context manager
 * (context-manager.ts) carries across awaits: one AsyncLocalStorage for trace and fields together, so
 * entering a message's scope is one `run`, not two, and the fields extracted from a message's baggage
 * arrive in the same Context object as its trace.
 */
export interface LogContext {
  request_id?: string;
  user_id?: string;
  user_name?: string;
  vm_id?: string;
  action?: string;
}

export const LOG_CONTEXT_FIELDS = ["request_id", "user_id", "user_name", "vm_id", "action"] as const;
export type LogContextField = (typeof LOG_CONTEXT_FIELDS)[number];

const LOG_CONTEXT_KEY = createContextKey("mikrom.log_context");
const EMPTY: Readonly<LogContext> = Object.freeze({});

/** The fields a context holds (none: an empty object). Do not mutate the result. */
export function logContextOf(ctx: Context): LogContext {
  return (ctx.getValue(LOG_CONTEXT_KEY) as LogContext | undefined) ?? EMPTY;
}

/** `ctx` holding exactly `fields` (a fresh object: setContext in that scope must not reach others). */
export function withLogContext(ctx: Context, fields: LogContext): Context {
  return ctx.setValue(LOG_CONTEXT_KEY, fields);
}

/** The fields of the current scope (an empty object outside any scope). Do not mutate it. */
export function getContext(): LogContext {
  return logContextOf(context.active());
}

/** Copies the defined fields of `from` over `into`; undefined values never erase a field. */
function mergeInto(into: LogContext, from: LogContext): LogContext {
  for (const key of LOG_CONTEXT_FIELDS) {
    const value = from[key];
    if (value !== undefined) into[key] = value;
  }
  return into;
}

/** Runs `fn` in a new scope holding the current fields merged with `fields`. */
export function withContext<T>(fields: LogContext, fn: () => T): T {
  const active = context.active();
  return context.with(withLogContext(active, mergeInto({ ...logContextOf(active) }, fields)), fn);
}

/**
 * Adds fields to the current scope, visible to everything that runs later in it (an auth middleware
 * setting `user_id` for the rest of the request). Outside any scope it does nothing: there is no
 * process-wide context to pollute.
 */
export function setContext(fields: LogContext): void {
  const current = context.active().getValue(LOG_CONTEXT_KEY) as LogContext | undefined;
  if (current) mergeInto(current, fields);
}

/** Runs `fn` with exactly `fields` as its context, discarding the caller's. */
export function replaceContext<T>(fields: LogContext, fn: () => T): T {
  return context.with(withLogContext(context.active(), mergeInto({}, fields)), fn);
}

/**
 * Runs `fn` outside any trace and fields: for work started by one request but shared by many (a
 * reader serving every client), which must not log or trace as that request.
 */
export function detached<T>(fn: () => T): T {
  return context.with(ROOT_CONTEXT, fn);
}
