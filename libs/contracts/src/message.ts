import { z } from "zod";

export type MessageKind = "command" | "event" | "query";

/** One message type of the contract: its name, schema version and payload schema, defined once. */
export interface MessageDef<
  K extends MessageKind = MessageKind,
  T extends string = string,
  S extends z.ZodType = z.ZodType,
> {
  readonly kind: K;
  readonly type: T;
  readonly version: number;
  readonly schema: S;
}

export type DataOf<D extends MessageDef> = z.infer<D["schema"]>;

/** A typed message as handlers see it: the definition's type tag and its validated data. */
export type MessageOf<D extends MessageDef> = { readonly type: D["type"]; readonly data: DataOf<D> };

const define =
  <K extends MessageKind>(kind: K) =>
  <T extends string, S extends z.ZodType>(type: T, version: number, schema: S): MessageDef<K, T, S> =>
    Object.freeze({ kind, type, version, schema });

export const command = define("command");
export const event = define("event");

/** A request-reply query (`<ns>.qry.<service>.<name>`): request and response schemas, defined once. */
export interface QueryDef<
  T extends string = string,
  Req extends z.ZodType = z.ZodType,
  Res extends z.ZodType = z.ZodType,
> extends MessageDef<"query", T, Req> {
  readonly response: Res;
}
export type RequestOf<Q extends QueryDef> = z.infer<Q["schema"]>;
export type ResponseOf<Q extends QueryDef> = z.infer<Q["response"]>;

export function query<T extends string, Req extends z.ZodType, Res extends z.ZodType>(
  type: T,
  request: Req,
  response: Res,
): QueryDef<T, Req, Res> {
  return Object.freeze({ kind: "query" as const, type, version: 1, schema: request, response });
}

/** The reply to a query: data, or an error the caller maps (not_found → 404, forbidden → 403/404, …). */
export const QueryErrorCode = z.enum(["not_found", "forbidden", "invalid", "unavailable", "internal"]);
export type QueryErrorCode = z.infer<typeof QueryErrorCode>;
export type QueryReply<T> =
  | { ok: true; data: T }
  | { ok: false; error: { code: QueryErrorCode; message: string } };

/** A payload that does not match its schema; carries every issue with its path, so a dead letter says why. */
export class ValidationFailed extends Error {
  override readonly name = "ValidationFailed";
  readonly messageType: string;
  readonly issues: ReadonlyArray<{ path: string; message: string }>;

  constructor(messageType: string, issues: ReadonlyArray<{ path: string; message: string }>) {
    super(
      `${messageType} is invalid: ${issues.map((i) => `${i.path || "(root)"}: ${i.message}`).join("; ")}`,
    );
    this.messageType = messageType;
    this.issues = issues;
  }
}

export function issuesOf(error: z.ZodError): Array<{ path: string; message: string }> {
  return error.issues.map((i) => ({ path: i.path.map(String).join("."), message: i.message }));
}

/** Parses data against its definition, throwing ValidationFailed with every issue. */
export function parse<D extends MessageDef>(def: D, data: unknown): DataOf<D> {
  const result = def.schema.safeParse(data);
  if (!result.success) throw new ValidationFailed(def.type, issuesOf(result.error));
  return result.data as DataOf<D>;
}

/** Looks definitions up by the type name a message carries in its headers. */
export class Registry<D extends MessageDef = MessageDef> {
  readonly #byType = new Map<string, D>();

  constructor(defs: Iterable<D>) {
    for (const def of defs) {
      if (this.#byType.has(def.type)) throw new Error(`duplicate message type ${def.type}`);
      this.#byType.set(def.type, def);
    }
  }

  get(type: string): D | undefined {
    return this.#byType.get(type);
  }

  /** Validates a received message; an unknown type is a validation failure too, never silently accepted. */
  parse(type: string, data: unknown): MessageOf<D> {
    const def = this.#byType.get(type);
    if (!def) throw new ValidationFailed(type, [{ path: "", message: `unknown message type ${type}` }]);
    return { type: def.type, data: parse(def, data) } as MessageOf<D>;
  }

  types(): string[] {
    return [...this.#byType.keys()];
  }
}
