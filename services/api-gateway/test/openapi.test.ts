import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { type OpenApiDocument, offlineApp, promises } from "./support/openapi.ts";

/** The document as the gateway served it before its routes were defined with @hono/zod-openapi. */
const BEFORE = JSON.parse(
  readFileSync(new URL("./fixtures/openapi-before.json", import.meta.url), "utf8"),
) as OpenApiDocument;

async function liveDocument(): Promise<OpenApiDocument> {
  const res = await offlineApp().request("/openapi.json");
  expect(res.status).toBe(200);
  return (await res.json()) as OpenApiDocument;
}

/** Routes that are not the API: middleware (`use`) and the documentation itself. */
const UNDOCUMENTED = new Set([
  "ALL /*",
  "ALL /api/*",
  "GET /openapi.json",
  "GET /docs",
  "GET /docs/init.js",
  "GET /docs/assets/{file}",
]);

describe("the OpenAPI document", () => {
  it("keeps every path, method, parameter, request body and response it ever promised", async () => {
    const live = promises(await liveDocument());
    const lost = [...promises(BEFORE)].filter((promise) => !live.has(promise));
    expect(lost).toEqual([]);
  });

  it("documents the VM list's keyset paging: page_token in, next_page_token out, a bad token a 400", async () => {
    const doc = await liveDocument();
    const live = promises(doc);
    expect(live).toContain("GET /api/v1/vms parameter query:page_token");
    expect(live).toContain("GET /api/v1/vms 400 application/problem+json");
    const page = doc.paths["/api/v1/vms"]?.get?.responses["200"]?.content?.["application/json"] as {
      schema: { properties: Record<string, { type: string[] }>; required: string[] };
    };
    expect(page.schema.properties.next_page_token?.type).toEqual(["string", "null"]);
    expect(page.schema.required).toContain("next_page_token");
  });

  it("describes every route the app answers, and every operation it describes is a route", async () => {
    const app = offlineApp();
    const routes = new Set(app.routes.map((r) => `${r.method} ${r.path.replace(/:([A-Za-z_]+)/g, "{$1}")}`));
    const operations = [...promises(await liveDocument())].filter((p) => /^[A-Z]+ \S+$/.test(p));
    // The web console's pages (HTML at `/`, `/vms`, …) are not the API; everything under /api and
    // /health is.
    const api = (r: string): boolean => / \/(api|health)(\/|$)/.test(r);
    const undocumented = [...routes].filter((r) => api(r) && !UNDOCUMENTED.has(r) && !operations.includes(r));
    expect(undocumented).toEqual([]);
    expect(operations.filter((op) => !routes.has(op))).toEqual([]);
  });

  it("every operation it says needs a token refuses a request without one (401 problem+json)", async () => {
    const app = offlineApp();
    const doc = (await liveDocument()) as OpenApiDocument & {
      paths: Record<string, Record<string, { security?: unknown[] }>>;
    };
    const open: string[] = [];
    for (const [path, operations] of Object.entries(doc.paths)) {
      for (const [method, operation] of Object.entries(operations)) {
        if (!operation.security?.length) continue;
        const res = await app.request(path.replace(/\{[^}]+\}/g, "x"), { method: method.toUpperCase() });
        if (res.status !== 401 || !res.headers.get("content-type")?.includes("application/problem+json"))
          open.push(`${method.toUpperCase()} ${path} -> ${res.status}`);
      }
    }
    expect(open).toEqual([]);
  });
});
