import { z } from "zod";
import type { GatewayApp } from "./env.ts";
import { ProblemSchema } from "./problem.ts";

type Method = "get" | "post" | "put" | "patch" | "delete";

export interface ResponseDoc {
  readonly description: string;
  readonly schema?: z.ZodType;
  /** `application/problem+json` with the shared Problem schema. */
  readonly problem?: boolean;
  readonly contentType?: string;
}

export interface RouteDoc {
  readonly method: Method;
  /** Hono form: `/api/v1/vms/:vm_id`. */
  readonly path: string;
  readonly summary: string;
  readonly tags: readonly string[];
  /** Needs a bearer token (default true). */
  readonly auth?: boolean;
  readonly body?: z.ZodType;
  readonly form?: z.ZodType;
  readonly query?: z.ZodObject;
  readonly responses: Readonly<Record<number, ResponseDoc>>;
}

const jsonSchema = (schema: z.ZodType, io: "input" | "output"): Record<string, unknown> =>
  z.toJSONSchema(schema, { io, unrepresentable: "any", reused: "inline" }) as Record<string, unknown>;

const STANDARD: Record<number, string> = {
  401: "Not authenticated",
  422: "Validation failed",
  429: "Too many requests",
};

/**
 * The OpenAPI 3.1 document, built from the same zod schemas the routes validate with: a route is
 * described where it is defined, so the document cannot drift from what the code accepts.
 */
export class OpenApi {
  readonly #routes: RouteDoc[] = [];

  add(doc: RouteDoc): void {
    this.#routes.push(doc);
  }

  document(info: { title: string; version: string }): Record<string, unknown> {
    const paths: Record<string, Record<string, unknown>> = {};
    for (const route of this.#routes) {
      const path = route.path.replace(/:([A-Za-z_]+)/g, "{$1}");
      const parameters: unknown[] = [...route.path.matchAll(/:([A-Za-z_]+)/g)].map((m) => ({
        name: m[1],
        in: "path",
        required: true,
        schema: { type: "string" },
      }));
      for (const [name, field] of Object.entries(route.query?.shape ?? {})) {
        const schema = jsonSchema(field as z.ZodType, "input");
        parameters.push({
          name,
          in: "query",
          required: !(field as z.ZodType).safeParse(undefined).success,
          schema,
        });
      }
      const responses: Record<string, unknown> = {};
      const auth = route.auth ?? true;
      const all: Record<number, ResponseDoc> = { ...route.responses };
      if (auth) all[401] ??= { description: STANDARD[401]!, problem: true };
      if (route.body || route.query || route.form)
        all[422] ??= { description: STANDARD[422]!, problem: true };
      all[429] ??= { description: STANDARD[429]!, problem: true };
      for (const [status, res] of Object.entries(all)) {
        const content = res.problem
          ? { "application/problem+json": { schema: { $ref: "#/components/schemas/Problem" } } }
          : res.schema
            ? { [res.contentType ?? "application/json"]: { schema: jsonSchema(res.schema, "output") } }
            : undefined;
        responses[status] = content
          ? { description: res.description, content }
          : { description: res.description };
      }
      const operation: Record<string, unknown> = {
        summary: route.summary,
        tags: route.tags,
        operationId: `${route.method}_${path.replace(/[^A-Za-z0-9]+/g, "_").replace(/^_|_$/g, "")}`,
        responses,
      };
      if (parameters.length > 0) operation.parameters = parameters;
      if (auth) operation.security = [{ bearer: [] }];
      if (route.body) {
        operation.requestBody = {
          required: true,
          content: { "application/json": { schema: jsonSchema(route.body, "input") } },
        };
      } else if (route.form) {
        operation.requestBody = {
          required: true,
          content: { "application/x-www-form-urlencoded": { schema: jsonSchema(route.form, "input") } },
        };
      }
      paths[path] ??= {};
      paths[path][route.method] = operation;
    }
    const problem = jsonSchema(ProblemSchema, "output");
    delete problem.$schema;
    delete problem.id;
    return {
      openapi: "3.1.0",
      info,
      paths,
      components: {
        schemas: { Problem: problem },
        securitySchemes: { bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" } },
      },
    };
  }
}

type Document = ReturnType<GatewayApp["getOpenAPI31Document"]>;
type PathItem = NonNullable<Document["paths"]>[string];
type Operation = NonNullable<PathItem["get"]>;

const OPERATIONS = ["get", "put", "post", "patch", "delete"] as const;
const PROBLEM_CONTENT = { "application/problem+json": { schema: { $ref: "#/components/schemas/Problem" } } };

/**
 * The OpenAPI 3.1 document of every route registered with `app.openapi`: generated from the same
 * definitions (zod schemas) the routes validate with and their handlers are typed by, so it cannot
 * drift from what the code accepts. What every route answers alike is added where a definition does
 * not say it (`withConventions`).
 */
export function openApiDocument(app: GatewayApp, info: { title: string; version: string }): Document {
  app.openAPIRegistry.register("Problem", ProblemSchema);
  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", {
    type: "http",
    scheme: "bearer",
    bearerFormat: "JWT",
  });
  const doc = app.getOpenAPI31Document({ openapi: "3.1.0", info });
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const method of OPERATIONS) {
      const operation = item[method];
      if (operation) withConventions(operation, method, path);
    }
  }
  return doc;
}

/**
 * An operation id from the method and path (`get_api_v1_vms_vm_id`); 401 where a token is needed; 422
 * where a body or query parameters are validated; 429 everywhere (the rate limits apply to every route).
 */
function withConventions(operation: Operation, method: string, path: string): void {
  operation.operationId ??= `${method}_${path.replace(/[^A-Za-z0-9]+/g, "_").replace(/^_|_$/g, "")}`;
  operation.responses ??= {};
  const responses = operation.responses;
  if (operation.security?.length)
    responses[401] ??= { description: STANDARD[401]!, content: PROBLEM_CONTENT };
  const query = operation.parameters?.some((p) => "in" in p && p.in === "query");
  if (operation.requestBody || query)
    responses[422] ??= { description: STANDARD[422]!, content: PROBLEM_CONTENT };
  responses[429] ??= { description: STANDARD[429]!, content: PROBLEM_CONTENT };
}
