import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { GatewayApp } from "../http/env.ts";
import { openApiDocument } from "../http/openapi.ts";

// Swagger UI is served from the package itself, so the docs work where the API has no internet.
const SWAGGER_UI = "/docs/assets";
const SWAGGER_UI_DIST = dirname(fileURLToPath(import.meta.resolve("swagger-ui-dist/package.json")));
const ASSETS: Record<string, string> = {
  "swagger-ui.css": "text/css; charset=utf-8",
  "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
};

const page = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Mikrom API</title>
<link rel="stylesheet" href="${SWAGGER_UI}/swagger-ui.css">
</head>
<body>
<div id="docs"></div>
<script src="${SWAGGER_UI}/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>`;

// A separate script rather than an inline one, so the page's CSP needs no 'unsafe-inline' for scripts.
const init = `window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#docs", persistAuthorization: true });`;

const DOCS_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
].join("; ");

/** The OpenAPI document of every route registered before the first request, and a page to read it. */
export function docsRoutes(app: GatewayApp, version: string): void {
  let cached: string | undefined;
  app.get("/openapi.json", (c) => {
    cached ??= JSON.stringify(openApiDocument(app, { title: "Mikrom API", version }));
    return c.body(cached, 200, { "Content-Type": "application/json" });
  });
  app.get("/docs", (c) => {
    c.header("Content-Security-Policy", DOCS_CSP);
    return c.html(page);
  });
  app.get("/docs/init.js", (c) => c.body(init, 200, { "Content-Type": "text/javascript; charset=utf-8" }));
  const assets = new Map<string, Uint8Array<ArrayBuffer>>();
  app.get("/docs/assets/:file", (c) => {
    const file = c.req.param("file");
    const type = ASSETS[file];
    if (!type) return c.notFound();
    let body = assets.get(file);
    if (!body) {
      body = new Uint8Array(readFileSync(join(SWAGGER_UI_DIST, file)));
      assets.set(file, body);
    }
    c.header("Cache-Control", "public, max-age=86400");
    return c.body(body, 200, { "Content-Type": type });
  });
}
