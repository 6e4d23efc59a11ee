/**
 * Secret scrubbing for log objects. pino's own `redact` needs every path spelled out; secrets turn up
 * anywhere (a request body, a headers object three levels down, a connection string), so this walks the
 * object instead, by key name, and copies only what it changes.
 */

export const REDACTED = "[REDACTED]";

/** Key names whose values are secrets, wherever they appear. */
const SECRET_KEY =
  /passw(or)?d|passphrase|^pass$|^pwd$|secret|token|authorization|cookie|credential|api[-_]?key|private[-_]?key|access[-_]?key|signing[-_]?key|^key$|^nkey|^seed$|^jwt$|invite|invitation|csrf/i;

/** `scheme://user:password@host` in a string (database and NATS URLs). */
const URL_PASSWORD = /(\b[a-z][a-z0-9+.-]*:\/\/[^:/@\s]+:)[^@/\s]+@/gi;
/** `Bearer <token>` inside a string (a logged header line or error message). */
const BEARER = /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/g;
/** A JWT anywhere in a string (a cookie header's text, an error message): header and payload are base64url JSON. */
const JWT = /\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g;
/** `name=value` of a secret-looking name in a query string or a cookie line (`?token=…`, `mikrom_refresh=…`). */
const SECRET_PARAM =
  /(\b(?:[A-Za-z0-9_-]*(?:token|passw(?:or)?d|secret|invite|csrf|api[-_]?key)[A-Za-z0-9_-]*|mikrom_(?:access|refresh))=)[^&;\s"']+/gi;

const MAX_DEPTH = 8;

/**
 * Verdicts per key name: log lines repeat the same few keys (`service`, `trace_id`, `duration_ms`…), and
 * a Map lookup is cheaper than the regular expression. Bounded, in case keys are generated.
 */
const verdicts = new Map<string, boolean>();
const MAX_VERDICTS = 2048;

export function isSecretKey(key: string): boolean {
  let secret = verdicts.get(key);
  if (secret === undefined) {
    secret = SECRET_KEY.test(key);
    if (verdicts.size >= MAX_VERDICTS) verdicts.clear();
    verdicts.set(key, secret);
  }
  return secret;
}

export function redactString(value: string): string {
  let out = value;
  if (out.includes("://") || out.includes("Bearer") || out.includes("Basic")) {
    out = out.replace(URL_PASSWORD, `$1${REDACTED}@`).replace(BEARER, `$1 ${REDACTED}`);
  }
  if (out.includes("eyJ")) out = out.replace(JWT, REDACTED);
  if (out.includes("=")) out = out.replace(SECRET_PARAM, `$1${REDACTED}`);
  return out;
}

/** `value` with secrets replaced; the same reference when nothing needed replacing. */
export function redact(value: unknown, depth = 0): unknown {
  if (typeof value === "string") return redactString(value);
  if (value === null || typeof value !== "object" || depth >= MAX_DEPTH) return value;
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const item = value[i];
      const next = redact(item, depth + 1);
      if (next !== item) {
        copy ??= value.slice();
        copy[i] = next;
      }
    }
    return copy ?? value;
  }
  // Errors, dates, buffers and other class instances are left to their serializers.
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return value;
  return redactRecord(value as Record<string, unknown>, depth, false);
}

/**
 * Redacts a plain record. With `inPlace` the record itself is changed (pino hands the log formatter a
 * fresh top-level object, so only nested objects need copying).
 */
export function redactRecord(
  record: Record<string, unknown>,
  depth: number,
  inPlace: boolean,
): Record<string, unknown> {
  let out: Record<string, unknown> | undefined = inPlace ? record : undefined;
  for (const key in record) {
    if (!Object.hasOwn(record, key)) continue;
    const item = record[key];
    const next = isSecretKey(key) && item !== undefined && item !== null ? REDACTED : redact(item, depth + 1);
    if (next !== item) {
      out ??= { ...record };
      out[key] = next;
    }
  }
  return out ?? record;
}
