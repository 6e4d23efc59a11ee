import { context, isSpanContextValid, trace } from "@opentelemetry/api";
import pino from "pino";
import { LOG_CONTEXT_FIELDS, logContextOf } from "./context.ts";
import { redactRecord, redactString } from "./redact.ts";
import { formatText } from "./text-format.ts";

/**
 * The shared logger: pino, one JSON object per line —
 * `{"level":"INFO","timestamp":"…Z","logger":"mikrom.vm-service.lifecycle","service":"vm-service",
 *   "trace_id":"…","span_id":"…","user_id":"…",…extras,"message":"VM running"}`.
 * `LOG_LEVEL` filters (default info), `LOG_FORMAT=text` prints one readable line instead.
 */
export type Logger = pino.Logger;

/** Something pino can write a finished line to (a stream, or `{ write(line) {…} }` in tests). */
export interface LogDestination {
  write(line: string): unknown;
}

const LEVELS = new Set(["trace", "debug", "info", "warn", "error", "fatal", "silent"]);

let serviceName = process.env.OTEL_SERVICE_NAME || "mikrom";
let target: LogDestination | undefined;
let stdout: LogDestination | undefined;
let root: Logger | undefined;

/** The service name every line carries; startTelemetry sets it. */
export function setServiceName(name: string): void {
  serviceName = name;
}

/**
 * Sends every logger's lines (including loggers created earlier) to `destination`, or back to stdout
 * with `undefined`. Lines are JSON even when LOG_FORMAT=text, so that tests can parse what they capture.
 */
export function setLogDestination(destination: LogDestination | undefined): void {
  target = destination;
}

function stdoutDestination(): LogDestination {
  // Synchronous: a line written before a crash is not lost in a buffer.
  stdout ??= pino.destination({ dest: 1, sync: true });
  return stdout;
}

/** The stream pino writes to: it forwards to whatever destination is current when the line is written. */
const forwarder: LogDestination = {
  write(line: string): void {
    if (target) {
      target.write(line);
      return;
    }
    stdoutDestination().write(process.env.LOG_FORMAT === "text" ? formatText(line) : line);
  },
};

function mixin(): Record<string, unknown> {
  const fields: Record<string, unknown> = { service: serviceName };
  const active = context.active();
  const spanContext = trace.getSpan(active)?.spanContext();
  if (spanContext && isSpanContextValid(spanContext)) {
    fields.trace_id = spanContext.traceId;
    fields.span_id = spanContext.spanId;
  }
  const ctx = logContextOf(active);
  for (const key of LOG_CONTEXT_FIELDS) {
    const value = ctx[key];
    if (value !== undefined) fields[key] = value;
  }
  return fields;
}

let stampSecond = Number.NaN;
let stampPrefix = "";

/**
 * `,"timestamp":"2026-01-02T03:04:05.678Z"` for now. The date and time up to the second are formatted
 * once a second and the milliseconds appended: `new Date().toISOString()` on every line was about a
 * tenth of a line's cost.
 */
export function isoTimestamp(now: number = Date.now()): string {
  const second = Math.floor(now / 1000);
  if (second !== stampSecond) {
    stampSecond = second;
    stampPrefix = `,"timestamp":"${new Date(second * 1000).toISOString().slice(0, 20)}`;
  }
  const ms = now - second * 1000;
  return `${stampPrefix}${ms < 10 ? "00" : ms < 100 ? "0" : ""}${ms}Z"`;
}

/** Error objects under `err`/`error` become the flat `error`, `error_type`, `stack` fields. */
function formatLogObject(obj: Record<string, unknown>): Record<string, unknown> {
  for (const key of ["err", "error"]) {
    const value = obj[key];
    if (value instanceof Error) {
      delete obj[key];
      Object.assign(obj, errorFields(value));
    }
  }
  return redactRecord(obj, 0, true);
}

function levelFromEnv(): string {
  const level = (process.env.LOG_LEVEL ?? "info").toLowerCase();
  if (level === "warning") return "warn";
  if (level === "critical") return "fatal";
  return LEVELS.has(level) ? level : "info";
}

function rootLogger(): Logger {
  root ??= pino(
    {
      level: levelFromEnv(),
      messageKey: "message",
      base: null,
      timestamp: () => isoTimestamp(),
      formatters: {
        level: (label) => ({ level: label.toUpperCase() }),
        log: formatLogObject,
      },
      // The message text is scrubbed like any field: a token or a URL's password interpolated into
      // it must not reach the log either.
      hooks: {
        logMethod(args, method) {
          for (let i = 0; i < args.length; i++) {
            const arg: unknown = args[i];
            if (typeof arg === "string") (args as unknown[])[i] = redactString(arg);
          }
          return method.apply(this, args);
        },
      },
      mixin,
    },
    forwarder,
  );
  return root;
}

/** A logger for one component, e.g. `createLogger("mikrom.vm-service.lifecycle")`. */
export function createLogger(component: string): Logger {
  return rootLogger().child({ logger: component });
}

/** The structured fields for an error: `error` (message), `error_type` (class name), `stack`. */
export function errorFields(error: unknown): { error: string; error_type: string; stack?: string } {
  if (error instanceof Error) {
    const fields: { error: string; error_type: string; stack?: string } = {
      error: error.message,
      error_type: error.name && error.name !== "Error" ? error.name : error.constructor.name,
    };
    if (error.stack) fields.stack = error.stack;
    return fields;
  }
  return { error: String(error), error_type: error === null ? "null" : typeof error };
}
