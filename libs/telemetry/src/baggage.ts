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

/** The LogContext part of a header, with the values it was built from (LogContext objects are mutable). */
interface CachedFields {
  values: (string | undefined)[];
  header: string;
}

/**
 * Serialized LogContext per LogContext object: every message published in one operation carries the
 * same fields, so they are encoded once. The values are compared on each use because setContext
 * changes a scope's object in place.
 */
const fieldsCache = new WeakMap<LogContext, CachedFields>();

function fieldsHeader(fields: LogContext): string {
  const cached = fieldsCache.get(fields);
  if (cached) {
    let same = true;
    for (let i = 0; i < BAGGAGE_ENTRIES.length; i++) {
      if (cached.values[i] !== fields[BAGGAGE_ENTRIES[i]![0]]) {
        same = false;
        break;
      }
    }
    if (same) return cached.header;
  }
  const values: (string | undefined)[] = [];
  let header = "";
  for (const [field, key] of BAGGAGE_ENTRIES) {
    const value = fields[field];
    values.push(value);
    if (value) header = header ? `${header},${encodeEntry(key, value)}` : encodeEntry(key, value);
  }
  fieldsCache.set(fields, { values, header });
  return header;
}

/**
 * The `baggage` header: the LogContext fields of the context, then any other baggage entries (set by
 * other code through the OpenTelemetry API) that do not name one of those fields.
 */
export function baggageHeader(ctx: Context): string {
  const fields = logContextOf(ctx);
  let header = fieldsHeader(fields);
  const other = propagation.getBaggage(ctx);
  if (other) {
    for (const [key, entry] of other.getAllEntries()) {
      const field = FIELD_BY_KEY.get(key);
      if (field && fields[field]) continue;
      const part = encodeEntry(key, entry.value);
      header = header ? `${header},${part}` : part;
    }
  }
  return header;
}

/**
 * Reads a `baggage` header: entries naming LogContext fields become the context's LogContext; any
 * others stay OpenTelemetry baggage, to be passed on. (Entry properties after `;` are dropped.)
 */
export function withBaggageHeader(ctx: Context, header: string): Context {
  const fields: LogContext = {};
  let hasFields = false;
  let other: Baggage | undefined;
  // Walked with indexOf rather than split: no array of pairs per message.
  for (let start = 0; start < header.length; ) {
    let end = header.indexOf(",", start);
    if (end === -1) end = header.length;
    const eq = header.indexOf("=", start);
    if (eq > start && eq < end) {
      const key = header.slice(start, eq).trim();
      let valueEnd = header.indexOf(";", eq);
      if (valueEnd === -1 || valueEnd > end) valueEnd = end;
      const value = decodeValue(header.slice(eq + 1, valueEnd).trim());
      if (value !== "" && key !== "") {
        const field = FIELD_BY_KEY.get(key);
        if (field) {
          fields[field] = value;
          hasFields = true;
        } else {
          other = (other ?? propagation.createBaggage()).setEntry(key, { value });
        }
      }
    }
    start = end + 1;
  }
  let out = hasFields ? withLogContext(ctx, fields) : ctx;
  if (other) out = propagation.setBaggage(out, other);
  return out;
}
