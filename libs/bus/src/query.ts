import {
  type DataOf,
  Header,
  issuesOf,
  type MessageDef,
  type Names,
  parse,
  type QueryDef,
  QueryErrorCode,
  type QueryReply,
  ValidationFailed,
} from "@mikrom/contracts";
import {
  createLogger,
  currentTraceId,
  errorFields,
  type Logger,
  traceHandle,
  tracePublish,
} from "@mikrom/telemetry";
import {
  headers as emptyHeaders,
  errors,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
} from "@nats-io/transport-node";
import { z } from "zod";
import { isStoreUnreachable } from "./unavailable.ts";

/** A query: its subject (`names.query(service, name)`), its request definition and its response schema. */
export interface QuerySpec<Q extends MessageDef, R extends z.ZodType> {
  readonly subject: string;
  readonly request: Q;
  readonly response: R;
}

/** The spec of a contract's query served by `service`: `<ns>.qry.<service>.<type>`. */
export function querySpec<Q extends QueryDef>(
  names: Names,
  service: string,
  def: Q,
): QuerySpec<Q, Q["response"]> {
  return { subject: names.query(service, def.type), request: def, response: def.response };
}

const LEGACY_CODES: Readonly<Record<string, QueryErrorCode>> = {
  NotFound: "not_found",
  Forbidden: "forbidden",
  ValidationFailed: "invalid",
  Invalid: "invalid",
  Unavailable: "unavailable",
};

/**
 * A query that did not produce an answer, with the contract's error code: `not_found`, `forbidden`,
 * `invalid` (the request broke its schema), `unavailable` (nothing answered, or not in time) or
 * `internal`. A handler throws it to answer with that code.
 */
export class QueryFailed extends Error {
  override readonly name = "QueryFailed";
  readonly code: QueryErrorCode;

  /** `code` is a QueryErrorCode; the names `NotFound`, `Forbidden`, `ValidationFailed`, `Unavailable` are mapped to theirs. */
  constructor(code: QueryErrorCode | string, message: string) {
    super(message);
    const known = QueryErrorCode.safeParse(code);
    this.code = known.success ? known.data : (LEGACY_CODES[code] ?? "internal");
  }
}

const Reply = z.union([
  z.object({ ok: z.literal(true), data: z.unknown() }),
  z.object({ ok: z.literal(false), error: z.object({ code: QueryErrorCode, message: z.string() }) }),
]);

export interface QueryServer {
  /** Stops taking requests and waits for the ones being answered. */
  stop(): Promise<void>;
}

/**
 * Answers a query on core NATS with a QueryReply. All replicas of a service share a queue group, so
 * each request is answered once. The request and the response are validated; every failure goes back
 * as an error code and message, never as silence.
 */
export function serveQuery<Q extends MessageDef, R extends z.ZodType>(
  nc: NatsConnection,
  spec: QuerySpec<Q, R>,
  handle: (request: DataOf<Q>, context: { headers: MsgHdrs | undefined }) => Promise<z.input<R>>,
  options: { queue: string; logger?: Logger },
): QueryServer {
  const log = options.logger ?? createLogger("mikrom.bus.query");
  const inFlight = new Set<Promise<void>>();

  async function answer(msg: Msg): Promise<void> {
    const reply = await traceHandle(
      { subject: msg.subject, consumerGroup: options.queue, headers: msg.headers },
      async (): Promise<QueryReply<unknown>> => {
        try {
          let body: unknown;
          try {
            body = JSON.parse(msg.string());
          } catch {
            throw new QueryFailed("invalid", "request body is not valid JSON");
          }
          const request = parse(spec.request, body);
          const response = spec.response.safeParse(await handle(request, { headers: msg.headers }));
          if (!response.success) {
            // The server's own bug, not the caller's: say which field, and call it internal.
            const invalid = new ValidationFailed(`${spec.request.type} response`, issuesOf(response.error));
            throw new QueryFailed("internal", invalid.message);
          }
          return { ok: true, data: response.data };
        } catch (error) {
          const failure = answerFor(error, spec.request.type);
          const level = failure.code === "internal" ? "error" : "debug";
          log[level](
            { subject: msg.subject, code: failure.code, ...errorFields(error) },
            "query not answered",
          );
          return { ok: false, error: { code: failure.code, message: failure.message } };
        }
      },
    );
    const headers = emptyHeaders();
    headers.set(Header.ContentType, "application/json");
    msg.respond(JSON.stringify(reply), { headers });
  }

  const sub = nc.subscribe(spec.subject, {
    queue: options.queue,
    callback: (error, msg) => {
      if (error)
        return log.error({ subject: spec.subject, ...errorFields(error) }, "query subscription failed");
      const work = answer(msg)
        .catch((e: unknown) =>
          log.error({ subject: msg.subject, ...errorFields(e) }, "could not answer a query"),
        )
        .finally(() => inFlight.delete(work));
      inFlight.add(work);
    },
  });
  return {
    async stop() {
      await sub.drain().catch(() => {});
      await Promise.all(inFlight);
    },
  };
}

/**
 * What the server tells the caller about a failure. Its own refusals (QueryFailed) and the caller's
 * invalid request say why; anything else is the server's business: the caller learns the code and
 * where to look, while the error's own text (a database's message names tables, columns, addresses)
 * stays in this service's log, found by the trace id.
 */
function answerFor(error: unknown, type: string): QueryFailed {
  const failure = asFailure(error);
  if (error instanceof QueryFailed || error instanceof ValidationFailed) return failure;
  const trace = currentTraceId();
  const where = `see the log of the service that answers it${trace ? ` (trace ${trace})` : ""}`;
  return new QueryFailed(
    failure.code,
    failure.code === "unavailable"
      ? `${type}: the answering service's database is unavailable; retry later`
      : `${type} failed inside the service that answers it; ${where}`,
  );
}

function asFailure(error: unknown): QueryFailed {
  if (error instanceof QueryFailed) return error;
  if (error instanceof ValidationFailed) return new QueryFailed("invalid", error.message);
  const message = error instanceof Error ? error.message : String(error);
  // The handler's own database is away (stopped, restarting): the caller may retry (the gateway's 503).
  if (isStoreUnreachable(error)) return new QueryFailed("unavailable", message);
  return new QueryFailed("internal", message);
}

/** Asks a query and returns its validated answer; throws QueryFailed for every way it can fail. */
export async function callQuery<Q extends MessageDef, R extends z.ZodType>(
  nc: NatsConnection,
  spec: QuerySpec<Q, R>,
  request: DataOf<Q>,
  options: { timeoutMs?: number; headers?: MsgHdrs } = {},
): Promise<z.output<R>> {
  let body: DataOf<Q>;
  try {
    body = parse(spec.request, request);
  } catch (error) {
    throw asFailure(error);
  }
  const headers = emptyHeaders();
  if (options.headers)
    for (const [key, values] of options.headers) for (const v of values) headers.append(key, v);
  headers.set(Header.Type, spec.request.type);
  headers.set(Header.SchemaVersion, String(spec.request.version));
  headers.set(Header.ContentType, "application/json");
  let msg: Msg;
  try {
    msg = await tracePublish({ subject: spec.subject, headers }, () =>
      nc.request(spec.subject, JSON.stringify(body), { timeout: options.timeoutMs ?? 5_000, headers }),
    );
  } catch (error) {
    if (error instanceof errors.TimeoutError)
      throw new QueryFailed("unavailable", `no answer on ${spec.subject} in time`);
    if (error instanceof errors.RequestError && error.isNoResponders()) {
      throw new QueryFailed("unavailable", `nothing serves ${spec.subject}`);
    }
    throw error;
  }
  const reply = Reply.safeParse(safeJson(msg.string()));
  if (!reply.success) throw new QueryFailed("internal", `malformed reply on ${spec.subject}`);
  if (!reply.data.ok) throw new QueryFailed(reply.data.error.code, reply.data.error.message);
  const data = spec.response.safeParse(reply.data.data);
  if (!data.success) {
    throw new QueryFailed(
      "internal",
      new ValidationFailed(`${spec.request.type} response`, issuesOf(data.error)).message,
    );
  }
  return data.data;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
