import type { MiddlewareHandler } from "hono";
import { z } from "zod";
import { ProblemSchema } from "./problem.ts";

// The parts a route definition (`createRoute`) is made of, so that every route spells them alike.

/** The security requirement of a route behind `signedIn` or `superuserOnly`. */
export const BEARER: Array<Record<string, string[]>> = [{ bearer: [] }];

/** A response with a JSON body of `schema`. */
export function json<S extends z.ZodType>(
  description: string,
  schema: S,
): { description: string; content: { "application/json": { schema: S } } } {
  return { description, content: { "application/json": { schema } } };
}

/** A response that is a problem document (RFC 9457). */
export function problemJson(description: string): {
  description: string;
  content: { "application/problem+json": { schema: typeof ProblemSchema } };
} {
  return { description, content: { "application/problem+json": { schema: ProblemSchema } } };
}

/** A JSON request body of `schema`; the route's middleware needs `readJson` (http/validate.ts). */
export function jsonRequest<S extends z.ZodType>(
  schema: S,
): { required: true; content: { "application/json": { schema: S } } } {
  return { required: true, content: { "application/json": { schema } } };
}

type FirstValues<Shape extends z.ZodRawShape> = z.ZodObject<{
  [K in keyof Shape]: z.ZodPipe<z.ZodTransform<unknown, unknown>, Shape[K]>;
}>;

/**
 * A route's query schema whose parameters each take the first of repeated values (`?page=1&page=2`
 * is page 1), as the gateway has always read them: the route's validator hands a schema every value.
 */
export function firstValues<Shape extends z.ZodRawShape>(query: z.ZodObject<Shape>): FirstValues<Shape> {
  const first = (value: unknown): unknown => (Array.isArray(value) ? value[0] : value);
  const shape = Object.fromEntries(
    Object.entries(query.shape).map(([name, schema]) => [name, z.preprocess(first, schema)]),
  );
  return z.object(shape) as FirstValues<Shape>;
}

/**
 * A route's middleware, in the order given, keeping each one's type: the handler then knows what
 * they set (`signedIn` sets the caller). An array literal would lose it.
 */
export function inOrder<M extends MiddlewareHandler[]>(...middleware: M): M {
  return middleware;
}
