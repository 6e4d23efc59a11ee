import { type Baggage, type Context, propagation } from "@opentelemetry/api";
import { type LogContext, type LogContextField, logContextOf, withLogContext } from "./context.ts";

/**
 * The W3C `baggage` header, read and written directly rather than through W3CBaggagePropagator: its
 * entries are mostly the LogContext, so they go straight to and from the context's LogContext on every
 * message, without building an OpenTelemetry Baggage object for them each time.
 */

/** LogContext field -> baggage key, as ARCHITECTURE.md §2 names them. */
export const BAGGAGE_KEYS: Readonly<Record<LogContextField, string>> = {
  request_id: "request.id",
  user_id: "user.id",
  user_name: "user.name",
  vm_id: "vm.id",
  action: "action",
};
const BAGGAGE_ENTRIES = Object.entries(BAGGAGE_KEYS) as [LogContextField, string][];

const FIELD_BY_KEY = new Map<string, LogContextField>(
  (Object.entries(BAGGAGE_KEYS) as [LogContextField, string][]).map(([field, key]) => [key, field]),
);

function encodeEntry(key: string, value: string): string {
  return `${key}=${encodeURIComponent(value)}`;
}

function decodeValue(raw: string): string {
  if (!raw.includes("%")) return raw;
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

/**
 * The `baggage` header: the LogContext fields of the context, then any other baggage entries (set by
 * other code through the OpenTelemetry API) that do not name one of those fields.
 */
export function baggageHeader(ctx: Context): string {
  const fields = logContextOf(ctx);
  const parts: string[] = [];
  for (const [field, key] of BAGGAGE_ENTRIES) {
    const value = fields[field];
    if (value) parts.push(encodeEntry(key, value));
  }
  const other = propagation.getBaggage(ctx);
  if (other) {
    for (const [key, entry] of other.getAllEntries()) {
      const field = FIELD_BY_KEY.get(key);
      if (field && fields[field]) continue;
      parts.push(encodeEntry(key, entry.value));
    }
  }
  return parts.join(",");
}

/**
 * Reads a `baggage` header: entries naming LogContext fields become the context's LogContext; any
 * others stay OpenTelemetry baggage, to be passed on. (Entry properties after `;` are dropped.)
 */
export function withBaggageHeader(ctx: Context, header: string): Context {
  const fields: LogContext = {};
  let hasFields = false;
  let other: Baggage | undefined;
  for (const pair of header.split(",")) {
    const eq = pair.indexOf("=");
    if (eq <= 0) continue;
    const key = pair.slice(0, eq).trim();
    const semi = pair.indexOf(";", eq);
    const value = decodeValue(pair.slice(eq + 1, semi === -1 ? undefined : semi).trim());
    if (value === "") continue;
    const field = FIELD_BY_KEY.get(key);
    if (field) {
      fields[field] = value;
      hasFields = true;
    } else {
      other = (other ?? propagation.createBaggage()).setEntry(key, { value });
    }
  }
  let out = hasFields ? withLogContext(ctx, fields) : ctx;
  if (other) out = propagation.setBaggage(out, other);
  return out;
}
