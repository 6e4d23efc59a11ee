/**
 * fast-check arbitraries from the JSON schemas of an OpenAPI document: values a schema accepts
 * (types, enums, formats, patterns, lengths, ranges, required properties) and values made to break
 * it (NUL, lone surrogates, huge strings, deep nesting, wrong types, missing required and extra
 * properties, out of range). Only the keywords the gateway's document uses are read.
 */
import fc from "fast-check";

export interface JsonSchema {
  readonly type?: string | readonly string[];
  readonly properties?: Readonly<Record<string, JsonSchema>>;
  readonly required?: readonly string[];
  readonly enum?: readonly unknown[];
  readonly format?: string;
  readonly pattern?: string;
  readonly minLength?: number;
  readonly maxLength?: number;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly exclusiveMinimum?: number;
}

/** A value the schema accepts. */
export function validValue(schema: JsonSchema): fc.Arbitrary<unknown> {
  if (schema.enum) return fc.constantFrom(...schema.enum);
  const types = typesOf(schema);
  return fc.oneof(...types.map((type) => validOfType(type, schema)));
}

/** Mostly values the schema accepts, the rest made to break it. */
export function fuzzedValue(schema: JsonSchema): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 3, arbitrary: validValue(schema) },
    { weight: 1, arbitrary: hostileValue(schema) },
  );
}

/** A value the schema refuses, or one that is hard on whoever reads it. */
export function hostileValue(schema: JsonSchema): fc.Arbitrary<unknown> {
  const types = typesOf(schema);
  return fc.oneof(
    hostileString,
    deeplyNested,
    wrongType(types),
    ...(types.includes("string") ? [outOfLength(schema)] : []),
    ...(types.includes("integer") || types.includes("number") ? [outOfRange(schema)] : []),
  );
}

function typesOf(schema: JsonSchema): string[] {
  if (Array.isArray(schema.type)) return [...schema.type];
  if (typeof schema.type === "string") return [schema.type];
  return schema.properties ? ["object"] : ["string"];
}

function validOfType(type: string, schema: JsonSchema): fc.Arbitrary<unknown> {
  switch (type) {
    case "null":
      return fc.constant(null);
    case "boolean":
      return fc.boolean();
    case "integer":
    case "number": {
      const min = schema.exclusiveMinimum !== undefined ? schema.exclusiveMinimum + 1 : schema.minimum;
      const ints = fc.integer({ min: min ?? -(2 ** 31), max: schema.maximum ?? 2 ** 31 - 1 });
      return type === "integer" ? ints : fc.oneof(ints, fc.double({ noNaN: true, noDefaultInfinity: true }));
    }
    case "object":
      return validObject(schema);
    case "array":
      return fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 5 });
    default:
      return validString(schema);
  }
}

function validString(schema: JsonSchema): fc.Arbitrary<string> {
  const minLength = schema.minLength ?? 0;
  const maxLength = schema.maxLength ?? 200;
  const fits = (s: string): boolean => s.length >= minLength && s.length <= maxLength;
  switch (schema.format) {
    case "email":
      return fc.emailAddress().filter(fits);
    case "ip":
      return fc.oneof(fc.ipV4(), fc.ipV6());
    case "date-time":
      return fc
        .date({ min: new Date("1970-01-01"), max: new Date("2100-01-01"), noInvalidDate: true })
        .map((d) => d.toISOString());
  }
  if (schema.pattern) return fc.stringMatching(new RegExp(schema.pattern)).filter(fits);
  return fc.string({ unit: "grapheme", minLength, maxLength: Math.min(maxLength, minLength + 40) });
}

function validObject(schema: JsonSchema): fc.Arbitrary<Record<string, unknown>> {
  const properties = schema.properties ?? {};
  const shape = Object.fromEntries(Object.entries(properties).map(([k, s]) => [k, validValue(s)]));
  return fc.record(shape, { requiredKeys: [...(schema.required ?? [])] }) as fc.Arbitrary<
    Record<string, unknown>
  >;
}

/**
 * An object for a body: valid, or valid but for one property (hostile), a required one missing,
 * or extra properties added.
 */
export function fuzzedObject(schema: JsonSchema): fc.Arbitrary<Record<string, unknown>> {
  const valid = validObject(schema);
  const keys = Object.keys(schema.properties ?? {});
  const required = schema.required ?? [];
  return fc.oneof(
    { weight: 6, arbitrary: valid },
    ...(keys.length
      ? [
          {
            weight: 3,
            arbitrary: fc
              .tuple(valid, fc.constantFrom(...keys))
              .chain(([o, key]) => hostileValue(schema.properties![key]!).map((v) => ({ ...o, [key]: v }))),
          },
        ]
      : []),
    ...(required.length
      ? [
          {
            weight: 1,
            arbitrary: fc.tuple(valid, fc.constantFrom(...required)).map(([o, key]) => {
              const { [key]: _, ...rest } = o;
              return rest;
            }),
          },
        ]
      : []),
    {
      weight: 1,
      arbitrary: fc
        .tuple(valid, fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 3 }), { minKeys: 1, maxKeys: 4 }))
        .map(([o, extra]) => ({ ...extra, ...o })),
    },
  );
}

/** Strings no text column can hold, or that are heavy to carry: NUL, lone surrogates, huge. */
export const hostileString: fc.Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 20 }).map((s) => `${s}\u0000${s}`),
  fc.constantFrom("\u0000", "%00", "a%00b", "\ud800", "x\udfffy", "\udc00\ud800", "\uffff", "\u202e"),
  fc.string({ unit: "binary", maxLength: 30 }),
  fc.constantFrom(1_000, 70_000, 300_000).map((n) => "x".repeat(n)),
  fc.constantFrom("../../etc/passwd", "%2F..%2F", "$" + "{jndi:x}", "'; DROP TABLE users;--", "<script>"),
);

/**
 * `[[[…]]]` or `{"a":{"a":…}}`, deeper than any schema expects (and than JSON.stringify can
 * write here: `toJson` writes it).
 */
export class Nested {
  readonly depth: number;
  readonly asArray: boolean;
  constructor(depth: number, asArray: boolean) {
    this.depth = depth;
    this.asArray = asArray;
  }
  text(): string {
    const [open, close] = this.asArray ? ["[", "]"] : ['{"a":', "}"];
    return `${open.repeat(this.depth)}${this.asArray ? "" : "{}"}${close.repeat(this.depth)}`;
  }
}

export const deeplyNested: fc.Arbitrary<Nested> = fc
  .tuple(fc.constantFrom(50, 1_000, 10_000), fc.boolean())
  .map(([depth, asArray]) => new Nested(depth, asArray));

/** JSON.stringify, with each `Nested` written out in place. */
export function toJson(value: unknown): string {
  const nested: Nested[] = [];
  const marker = (i: number): string => `\u0001nested-${i}\u0001`;
  const text = JSON.stringify(value, (_, v) => (v instanceof Nested ? marker(nested.push(v) - 1) : v)) ?? "";
  return nested.reduce((out, n, i) => out.replace(JSON.stringify(marker(i)), () => n.text()), text);
}

function wrongType(types: readonly string[]): fc.Arbitrary<unknown> {
  const all: Record<string, fc.Arbitrary<unknown>> = {
    string: fc.string({ maxLength: 10 }),
    integer: fc.constantFrom(0, -1, 2 ** 53 + 1, -(2 ** 63), 1e308),
    number: fc.constantFrom(1.5, -0.0001, 1e-300),
    boolean: fc.boolean(),
    null: fc.constant(null),
    object: fc.dictionary(fc.string({ maxLength: 5 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 }),
    array: fc.array(fc.jsonValue({ maxDepth: 1 }), { maxLength: 3 }),
  };
  const wrong = Object.entries(all)
    .filter(([type]) => !types.includes(type) && !(type === "number" && types.includes("integer")))
    .map(([, arb]) => arb);
  return fc.oneof(...wrong);
}

function outOfLength(schema: JsonSchema): fc.Arbitrary<string> {
  const lengths = [schema.maxLength !== undefined ? schema.maxLength + 1 : 10_000];
  if (schema.minLength) lengths.push(schema.minLength - 1);
  return fc.constantFrom(...lengths).map((n) => "a".repeat(n));
}

function outOfRange(schema: JsonSchema): fc.Arbitrary<number> {
  const edges = [-1, 0, 2 ** 31, 2 ** 53, 1.5];
  if (schema.minimum !== undefined) edges.push(schema.minimum - 1);
  if (schema.exclusiveMinimum !== undefined) edges.push(schema.exclusiveMinimum);
  if (schema.maximum !== undefined) edges.push(schema.maximum + 1);
  return fc.constantFrom(...edges);
}
