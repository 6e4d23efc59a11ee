import type { Context } from "hono";
import { type Child, type JSXNode, jsx } from "hono/jsx";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import htmModule from "htm";

/**
 * Markup for hono/jsx, written as tagged templates: Node runs the gateway's TypeScript by stripping
 * types, which cannot parse JSX syntax, and the project has no build step. `html` builds the same
 * JSXNode tree `.tsx` would (escaped text and attributes, components), so a page is still Hono's
 * JSX rendered on the server. Components are called as typed functions: `${VmRow({ vm })}`.
 */
// htm's type declarations describe its CommonJS build; Node loads its ES module, whose default
// export is the function itself.
const htm = htmModule as unknown as (typeof htmModule)["default"];

export const html = htm.bind(jsx) as (strings: TemplateStringsArray, ...values: unknown[]) => JSXNode;

export type Markup = Child;

/**
 * The console's pages load scripts, styles and images from the gateway alone, post forms to it
 * alone, and are never framed.
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join("; ");

/** A whole page: the document type, the console's CSP, and never cached (it shows one user's data). */
export async function renderPage(
  c: Context,
  page: JSXNode,
  status: ContentfulStatusCode = 200,
): Promise<Response> {
  c.header("Content-Security-Policy", CONSOLE_CSP);
  c.header("Cache-Control", "no-store");
  return c.html(`<!DOCTYPE html>${await page.toString()}`, status);
}
