import type { Hono } from "hono";
import type { AppEnv } from "../http/env.ts";
import type { OpenApi } from "../http/openapi.ts";

const SWAGGER_UI = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5";

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
  `script-src 'self' https://cdn.jsdelivr.net`,
  `style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net`,
  "img-src 'self' data: https://cdn.jsdelivr.net",
  "connect-src 'self'",
  "frame-ancestors 'none'",
].join("; ");

export function docsRoutes(app: Hono<AppEnv>, docs: OpenApi, version: string): void {
  let cached: string | undefined;
  app.get("/openapi.json", (c) => {
    cached ??= JSON.stringify(docs.document({ title: "Mikrom API", version }));
    return c.body(cached, 200, { "Content-Type": "application/json" });
  });
  app.get("/docs", (c) => {
    c.header("Content-Security-Policy", DOCS_CSP);
    return c.html(page);
  });
  app.get("/docs/init.js", (c) => c.body(init, 200, { "Content-Type": "text/javascript; charset=utf-8" }));
}
