import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { z } from "zod";

/** One invalid field of a request: where it is (`body.name`, `query.page`) and what is wrong. */
export interface FieldError {
  readonly field: string;
  readonly message: string;
  /** The same place as FastAPI spelled it, for the earlier clients: `["body", "name"]`. */
  readonly loc: ReadonlyArray<string | number>;
  readonly type: string;
}

/**
 * An error that ends the request with an RFC 9457 problem document. Thrown anywhere below a route;
 * `app.onError` turns it into the response, so every error body has the same shape.
 */
export class Problem extends Error {
  override readonly name = "Problem";
  readonly status: ContentfulStatusCode;
  readonly errors: readonly FieldError[] | undefined;
  readonly headers: Readonly<Record<string, string>>;

  constructor(
    status: ContentfulStatusCode,
    detail: string,
    options: { errors?: readonly FieldError[]; headers?: Record<string, string> } = {},
  ) {
    super(detail);
    // An expected outcome, not a bug: a stack would only add noise to the request log.
    this.stack = undefined;
    this.status = status;
    this.errors = options.errors;
    this.headers = options.headers ?? {};
  }
}

const TITLES: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  409: "Conflict",
  410: "Gone",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  422: "Unprocessable Content",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

/** The problem document's schema, for the OpenAPI document (`components.schemas.Problem`). */
export const ProblemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.int(),
    detail: z.string(),
    error: z.string().describe("The same text as detail (read by the Go command-line client)"),
    instance: z.string(),
    errors: z
      .array(
        z.object({
          field: z.string(),
          message: z.string(),
          loc: z.array(z.union([z.string(), z.number()])),
          type: z.string(),
        }),
      )
      .optional(),
  })
  .meta({ id: "Problem" });

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  /** A string, as the earlier Python clients read it. */
  detail: string;
  /** The same text as `detail`: the Go command-line client reads `error`. */
  error: string;
  instance: string;
  errors?: readonly FieldError[];
}

export function problemBody(
  status: number,
  detail: string,
  instance: string,
  errors?: readonly FieldError[],
): ProblemBody {
  const body: ProblemBody = {
    type: "about:blank",
    title: TITLES[status] ?? "Error",
    status,
    detail,
    error: detail,
    instance,
  };
  if (errors) body.errors = errors;
  return body;
}

/** Writes a problem document as the response. */
export function problemResponse(c: Context, problem: Problem): Response {
  const body = problemBody(problem.status, problem.message, c.req.path, problem.errors);
  for (const [name, value] of Object.entries(problem.headers)) c.header(name, value);
  return c.body(JSON.stringify(body), problem.status, { "Content-Type": "application/problem+json" });
}

/** Where a request's invalid input was. */
export type FieldSource = "body" | "query" | "path" | "header" | "cookie";

export function fieldErrors(source: FieldSource, error: z.ZodError): FieldError[] {
  return error.issues.map((issue) => {
    const path = issue.path.map((p) => (typeof p === "symbol" ? String(p) : p));
    return {
      field: [source, ...path].join("."),
      message: issue.message,
      loc: [source, ...path],
      type: issue.code,
    };
  });
}

/** A 422 listing every invalid field; `detail` names them too so a client that reads only it sees why. */
export function validationProblem(errors: readonly FieldError[]): Problem {
  const summary = errors.map((e) => `${e.field}: ${e.message}`).join("; ");
  return new Problem(422, `Validation failed: ${summary}`, { errors });
}

export const notFound = (what: string): Problem => new Problem(404, `${what} not found`);
