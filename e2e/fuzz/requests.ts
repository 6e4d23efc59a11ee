/**
 * Requests for every operation of an OpenAPI document: path, query and body drawn from the
 * operation's own schemas (schema-arbitraries.ts), mixed with what no schema admits: odd path
 * segments, broken encodings, malformed and oversized bodies, wrong methods and content types,
 * broken credentials, and requests Node's HTTP parser must refuse on its own.
 */
import fc from "fast-check";
import {
  deeplyNested,
  fuzzedObject,
  fuzzedValue,
  hostileString,
  type JsonSchema,
  toJson,
} from "./schema-arbitraries.ts";

export interface OpenApiDocument {
  readonly paths: Record<string, Record<string, OpenApiOperation>>;
}
interface OpenApiOperation {
  readonly parameters?: ReadonlyArray<{ name: string; in: string; required?: boolean; schema: JsonSchema }>;
  readonly requestBody?: { content: Record<string, { schema: JsonSchema }> };
  readonly security?: unknown[];
}

/** Who sends it: nobody, the fuzz's user or superuser, or someone with broken credentials. */
export type Caller = "anonymous" | "user" | "superuser" | "refresh-as-access" | "bad-token" | "no-token";

/**
 * A path parameter: an id the run has seen (the n-th of its kind, picked when the request is sent,
 * so that requests reach VMs, pools and users that exist), or a segment as sent (already encoded;
 * one char per byte).
 */
export type Segment = { readonly known: number } | { readonly text: string };

export interface FuzzRequest {
  /** `METHOD /path/{template}` of the operation it was drawn from. */
  readonly operation: string;
  readonly method: string;
  readonly template: string;
  readonly segments: Readonly<Record<string, Segment>>;
  /** `?…` as sent, or "". */
  readonly query: string;
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly body?: Buffer;
  readonly caller: Caller;
  /** A request that is not HTTP as the server expects it, sent byte for byte instead. */
  readonly raw?: Buffer;
}

const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/** One arbitrary per operation of the document, and a few for no operation at all. */
export function requestArbitrary(doc: OpenApiDocument): fc.Arbitrary<FuzzRequest> {
  const operations = Object.entries(doc.paths).flatMap(([template, ops]) =>
    Object.entries(ops).map(([method, op]) => ({
      weight: weightOf(method.toUpperCase(), template, op),
      arbitrary: operationRequest(method.toUpperCase(), template, op),
    })),
  );
  return fc.oneof(
    { weight: 20, arbitrary: fc.oneof(...operations) },
    { weight: 1, arbitrary: strayRequest },
    { weight: 1, arbitrary: malformedRequest },
  );
}

/**
 * Commands (what a service must keep or refuse) are drawn more often than reads, and creating a VM
 * most: it is the command whose answer (201/202) the run checks against what vm-service kept.
 */
function weightOf(method: string, template: string, op: OpenApiOperation): number {
  if (method === "POST" && template === "/api/v1/vms") return 6;
  return method !== "GET" && op.security !== undefined ? 2 : 1;
}

function operationRequest(method: string, template: string, op: OpenApiOperation): fc.Arbitrary<FuzzRequest> {
  const params = op.parameters ?? [];
  const pathParams = params.filter((p) => p.in === "path");
  const segments = fc.record(
    Object.fromEntries(pathParams.map((p) => [p.name, segmentOf(p.schema)])) as Record<
      string,
      fc.Arbitrary<Segment>
    >,
  );
  const query = queryOf(params.filter((p) => p.in === "query"));
  const bodies = Object.entries(op.requestBody?.content ?? {});
  const body = bodies.length
    ? fc.oneof(...bodies.map(([type, { schema }]) => bodyOf(type, schema)))
    : fc.option(fc.constantFrom<[string, Buffer]>(["application/json", Buffer.from("{}")]), {
        nil: undefined,
      });
  return fc
    .record({
      method: fc.oneof(
        { weight: 12, arbitrary: fc.constant(method) },
        { weight: 1, arbitrary: fc.constantFrom(...METHODS) },
      ),
      segments,
      query,
      body,
      caller: callerArbitrary(op.security !== undefined),
      extra: extraHeaders,
    })
    .map(({ method: m, segments: s, query: q, body: b, caller, extra }) => ({
      operation: `${method} ${template}`,
      method: m,
      template,
      segments: s,
      query: q,
      headers: [...(b ? [["Content-Type", b[0]] as const] : []), ...extra],
      ...(b && { body: b[1] }),
      caller,
    }));
}

function callerArbitrary(secured: boolean): fc.Arbitrary<Caller> {
  return fc.oneof(
    { weight: secured ? 1 : 3, arbitrary: fc.constant("anonymous" as const) },
    { weight: 6, arbitrary: fc.constant("user" as const) },
    { weight: 2, arbitrary: fc.constant("superuser" as const) },
    {
      weight: 1,
      arbitrary: fc.constantFrom("refresh-as-access" as const, "bad-token" as const, "no-token" as const),
    },
  );
}

/** Segments no route expects: traversal, encoded slashes, overlong UTF-8, NUL, very long. */
const oddSegment: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom("..", ".", "%2e%2e", "%2F", "a%2Fb", "..%2F..%2Fetc", "%C0%AF", "%C0%80", "%E0%80%AF"),
  fc.constantFrom("%ED%A0%80", "%00", "a%00b", "%", "%ZZ", "%E0%A4%A", "", "%20", "+", ";x=1", "%3F"),
  // Raw bytes in the request line: an overlong "/" and a lone-surrogate encoding, unescaped.
  fc.constantFrom("\xc0\xaf", "\xed\xa0\x80", "\xff\xfe"),
  fc.constantFrom(300, 3_000, 20_000).map((n) => "a".repeat(n)),
);

function segmentOf(schema: JsonSchema): fc.Arbitrary<Segment> {
  return fc.oneof(
    { weight: 6, arbitrary: fc.nat().map((known) => ({ known })) },
    { weight: 2, arbitrary: fuzzedValue(schema).map((v) => ({ text: encode(textOf(v)) })) },
    { weight: 2, arbitrary: oddSegment.map((text) => ({ text })) },
  );
}

function queryOf(params: ReadonlyArray<{ name: string; schema: JsonSchema }>): fc.Arbitrary<string> {
  const pairs = params.map((p) =>
    fc.option(
      fuzzedValue(p.schema).map((v) => `${p.name}=${encode(textOf(v))}`),
      { nil: undefined, freq: 2 },
    ),
  );
  const stray = fc.array(
    fc.oneof(
      fc.constantFrom("%", "%ZZ", "a=%00", "page=1&page=2", "=", "&&", "x=%ED%A0%80", "page=\xc0\xaf"),
      fc
        .tuple(fc.string({ maxLength: 10 }), hostileString)
        .map(([k, v]) => `${encode(k)}=${encode(v.slice(0, 5_000))}`),
    ),
    { maxLength: 2 },
  );
  return fc
    .tuple(
      fc.tuple(...pairs),
      fc.oneof({ weight: 4, arbitrary: fc.constant([]) }, { weight: 1, arbitrary: stray }),
    )
    .map(([own, extra]) => {
      const all = [...own.filter((p): p is string => p !== undefined), ...extra];
      return all.length ? `?${all.join("&")}` : "";
    });
}

/** A body for the media type: the schema's object, fuzzed, or bytes no parser should choke on. */
function bodyOf(type: string, schema: JsonSchema): fc.Arbitrary<[string, Buffer]> {
  const encodeAs = (value: unknown): Buffer =>
    type.includes("form") && value && typeof value === "object" && !Array.isArray(value)
      ? Buffer.from(
          Object.entries(value)
            .map(([k, v]) => `${encode(k)}=${encode(textOf(v))}`)
            .join("&"),
          "latin1",
        )
      : Buffer.from(toJson(value), "utf8");
  const contentType = fc.oneof(
    { weight: 8, arbitrary: fc.constant(type) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=zzz",
        "application/json; charset=utf-16",
        "application/xml",
      ),
    },
  );
  return fc.tuple(
    contentType,
    fc.oneof(
      { weight: 12, arbitrary: fuzzedObject(schema).map(encodeAs) },
      { weight: 1, arbitrary: fc.oneof(deeplyNested, fc.jsonValue({ maxDepth: 3 })).map(encodeAs) },
      { weight: 2, arbitrary: brokenBody },
    ),
  );
}

/** Bytes that are not the JSON a route wants: malformed, invalid UTF-8, deeply nested, too large. */
const brokenBody: fc.Arbitrary<Buffer> = fc.oneof(
  fc
    .constantFrom("", "{", "[", '{"name":', "nul", "\u0000", "{}".repeat(1_000), "a=b&c=d", '{"a":1}garbage')
    .map((s) => Buffer.from(s)),
  fc.constantFrom(
    Buffer.from([0x7b, 0x22, 0x6e, 0x61, 0x6d, 0x65, 0x22, 0x3a, 0x22, 0xff, 0xc0, 0xaf, 0x22, 0x7d]),
    Buffer.from([0x00, 0x00, 0x00, 0x7b]),
  ),
  fc.constantFrom(10_000, 100_000).map((depth) => Buffer.from(`${"[".repeat(depth)}${"]".repeat(depth)}`)),
  fc.constantFrom(900_000, 1_200_000).map((n) => Buffer.from(JSON.stringify({ name: "x".repeat(n) }))),
);

const headerText = fc.string({ maxLength: 60, unit: fc.constantFrom(..."abcXYZ019 -_.:;/=+%\xe9\xff") });
const extraHeaders: fc.Arbitrary<Array<[string, string]>> = fc
  .record(
    {
      "Idempotency-Key": headerText,
      "Last-Event-ID": headerText,
      "X-Request-ID": fc.oneof(headerText, fc.constant("r".repeat(2_000))),
      "X-Forwarded-For": fc.constantFrom("10.0.0.1", "::1, 1.2.3.4", "garbage"),
    },
    { requiredKeys: [] },
  )
  .map((h) => Object.entries(h));

/** Requests for paths the document does not have. */
const strayRequest: fc.Arbitrary<FuzzRequest> = fc
  .record({
    method: fc.constantFrom(...METHODS),
    parts: fc.array(fc.oneof(fc.string({ maxLength: 20 }).map(encode), oddSegment), { maxLength: 5 }),
    prefix: fc.constantFrom("", "/api", "/api/v1", "/api/v1/vms", "/api/v1/ippools", "//api//v1"),
    caller: callerArbitrary(true),
  })
  .map(({ method, parts, prefix, caller }) => ({
    operation: "(no operation)",
    method,
    template: `${prefix}/${parts.join("/")}`,
    segments: {},
    query: "",
    headers: [],
    caller,
  }));

/** What Node's HTTP parser answers itself: a malformed request line, a bad header, headers too large. */
const malformedRequest: fc.Arbitrary<FuzzRequest> = fc
  .constantFrom(
    "NOT A REQUEST\r\n\r\n",
    "GET /api/v1/vms/\u0000 HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET /api/v1/vms HTTP/1.1\r\nHost: x\r\nX-Bad: a\u0000b\r\n\r\n",
    "GET /api/v1/vms HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n",
    `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`,
    `GET /${"a".repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
    "POST /api/v1/vms HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    "POST /api/v1/vms HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\n{}",
    "POST /api/v1/vms HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    "GET /health HTTP/9.9\r\nHost: x\r\n\r\n",
    "GET  HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET /health HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
  )
  .map((text) => ({
    operation: "(malformed HTTP)",
    method: text.split(" ")[0] ?? "",
    template: "",
    segments: {},
    query: "",
    headers: [],
    caller: "anonymous" as const,
    raw: Buffer.from(text, "latin1"),
  }));

function textOf(value: unknown): string {
  return typeof value === "string" ? value : toJson(value);
}

/**
 * Percent-encodes the UTF-8 of `text` but its unreserved characters (a lone surrogate as the
 * bytes of its code point, which no decoder should accept); one char per byte, ready to be sent.
 */
export function encode(text: string): string {
  let out = "";
  for (const char of text) {
    if (/^[A-Za-z0-9._~-]$/.test(char)) {
      out += char;
      continue;
    }
    const code = char.codePointAt(0)!;
    const bytes =
      code >= 0xd800 && code <= 0xdfff
        ? [0xe0 | (code >> 12), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f)]
        : [...Buffer.from(char, "utf8")];
    out += bytes.map((b) => `%${b.toString(16).toUpperCase().padStart(2, "0")}`).join("");
  }
  return out;
}
