import type { Context } from "hono";
import type { z } from "zod";
import { fieldErrors, Problem, validationProblem } from "./problem.ts";

/**
 * Reads and validates a JSON body. A body that is not JSON at all is a 422 on `body` (as FastAPI
 * answered), not a 400, so clients handle one kind of input error.
 */
export async function jsonBody<S extends z.ZodType>(c: Context, schema: S): Promise<z.output<S>> {
  const text = await c.req.text();
  let value: unknown;
  try {
    value = text.length === 0 ? undefined : JSON.parse(text);
  } catch (error) {
    throw validationProblem([
      {
        field: "body",
        message: `malformed JSON: ${(error as Error).message}`,
        loc: ["body"],
        type: "json_invalid",
      },
    ]);
  }
  if (value === undefined) {
    throw validationProblem([
      { field: "body", message: "a JSON body is required", loc: ["body"], type: "missing" },
    ]);
  }
  return parseWith("body", schema, value);
}

export function parseWith<S extends z.ZodType>(
  source: "body" | "query" | "path",
  schema: S,
  value: unknown,
): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw validationProblem(fieldErrors(source, result.error));
  return result.data;
}

export function queryParams<S extends z.ZodType>(c: Context, schema: S): z.output<S> {
  return parseWith("query", schema, c.req.query());
}

export function pathParam<S extends z.ZodType>(c: Context, name: string, schema: S): z.output<S> {
  const result = schema.safeParse(c.req.param(name));
  if (!result.success) {
    throw validationProblem(
      fieldErrors("path", result.error).map((e) => ({ ...e, field: `path.${name}`, loc: ["path", name] })),
    );
  }
  return result.data;
}

/** A form (`application/x-www-form-urlencoded` or multipart) as a plain object of strings. */
export async function formBody(c: Context): Promise<Record<string, string>> {
  try {
    const form = await c.req.parseBody();
    const out: Record<string, string> = {};
    for (const [key, value] of Object.entries(form)) if (typeof value === "string") out[key] = value;
    return out;
  } catch {
    throw new Problem(422, "Validation failed: body: malformed form body", {
      errors: [{ field: "body", message: "malformed form body", loc: ["body"], type: "form_invalid" }],
    });
  }
}
