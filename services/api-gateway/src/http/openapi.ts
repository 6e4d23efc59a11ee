import type { GatewayApp } from "./env.ts";
import { ProblemSchema } from "./problem.ts";

type Document = ReturnType<GatewayApp["getOpenAPI31Document"]>;
type PathItem = NonNullable<Document["paths"]>[string];
type Operation = NonNullable<PathItem["get"]>;

const OPERATIONS = ["get", "put", "post", "patch", "delete"] as const;
const STANDARD = {
  401: "Not authenticated",
  422: "Validation failed",
  429: "Too many requests",
} as const;
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
  if (operation.security?.length) responses[401] ??= { description: STANDARD[401], content: PROBLEM_CONTENT };
  const query = operation.parameters?.some((p) => "in" in p && p.in === "query");
  if (operation.requestBody || query)
    responses[422] ??= { description: STANDARD[422], content: PROBLEM_CONTENT };
  responses[429] ??= { description: STANDARD[429], content: PROBLEM_CONTENT };
}
