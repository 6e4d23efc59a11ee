import type { Context, MiddlewareHandler } from "hono";
import type { z } from "zod";
import type { AppEnv } from "./env.ts";
import { type FieldSource, fieldErrors, Problem, validationProblem } from "./problem.ts";

type Target = "json" | "form" | "query" | "param" | "header" | "cookie";
const SOURCE: Record<Target, FieldSource> = {
  json: "body",
  form: "body",
  query: "query",
  param: "path",
  header: "header",
  cookie: "cookie",
};

/**
 * The `defaultHook` of the gateway's app: a request a route's schemas refuse ends as the same 422
 * problem document a handler's own refusal would be (`errors` lists each field, `detail` names them).
 */
export function validationHook(result: { target: string; success: boolean; error?: z.ZodError }): void {
  if (result.success || !result.error) return;
  throw validationProblem(fieldErrors(SOURCE[result.target as Target] ?? "body", result.error));
}

/**
 * Route middleware for a route whose body is JSON (`jsonRequest(schema)`): the body is read as JSON
 * whatever its Content-Type says, as the earlier API read it (`curl -d` labels JSON a form). An empty
 * or malformed body is a 422 on `body`, as FastAPI answered, not a 400, so clients handle one kind
 * of input error. The route's validator then sees the body labelled `application/json`.
 */
export const readJson: MiddlewareHandler<AppEnv> = async (c, next) => {
  const text = await c.req.text();
  if (text.length === 0) {
    throw validationProblem([
      { field: "body", message: "a JSON body is required", loc: ["body"], type: "missing" },
    ]);
  }
  try {
    JSON.parse(text);
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
  labelBody(c, "application/json");
  await next();
};

/**
 * Route middleware for a route whose body is a form: only its text fields count, and a body that is
 * not a form (or no body) reads as an empty form, so what is missing is listed as missing. The route's
 * validator then sees those fields, labelled `application/x-www-form-urlencoded`.
 */
export const readForm: MiddlewareHandler<AppEnv> = async (c, next) => {
  let parsed: Record<string, unknown>;
  try {
    parsed = await c.req.parseBody();
  } catch {
    throw new Problem(422, "Validation failed: body: malformed form body", {
      errors: [{ field: "body", message: "malformed form body", loc: ["body"], type: "form_invalid" }],
    });
  }
  const form = new FormData();
  for (const [key, value] of Object.entries(parsed)) if (typeof value === "string") form.set(key, value);
  // The parsed form stands in for the body: the validator reads it from here instead of parsing again.
  c.req.bodyCache.formData = form;
  labelBody(c, "application/x-www-form-urlencoded");
  await next();
};

/** The body has been read already; its label now says what it was read as, for the route's validator. */
function labelBody(c: Context, type: string): void {
  if (c.req.header("content-type") !== type) c.req.raw.headers.set("content-type", type);
}
