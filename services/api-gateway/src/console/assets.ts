import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Hono } from "hono";
import type { AppEnv } from "../http/env.ts";

interface Asset {
  readonly body: string;
  readonly type: string;
  readonly hash: string;
}

/**
 * The console's stylesheet and script, read once at start and served by the gateway itself: no CDN,
 * so the console works offline and its CSP can name 'self' alone. URLs carry the content hash, so a
 * browser keeps a file until it changes.
 */
const ASSETS: ReadonlyMap<string, Asset> = new Map(
  (
    [
      ["console.css", "text/css; charset=utf-8"],
      ["console.js", "text/javascript; charset=utf-8"],
    ] as const
  ).map(([name, type]) => {
    const body = readFileSync(new URL(`./assets/${name}`, import.meta.url), "utf8");
    const hash = createHash("sha256").update(body).digest("hex").slice(0, 12);
    return [name, { body, type, hash }];
  }),
);

export const ASSET_PREFIX = "/console/assets/";

/** The URL of an asset, with its content hash. */
export function assetUrl(name: "console.css" | "console.js"): string {
  return `${ASSET_PREFIX}${name}?v=${ASSETS.get(name)!.hash}`;
}

export function assetRoutes(app: Hono<AppEnv>): void {
  app.get(`${ASSET_PREFIX}:name`, (c) => {
    const asset = ASSETS.get(c.req.param("name"));
    if (!asset) return c.notFound();
    const etag = `"${asset.hash}"`;
    const current = c.req.query("v") === asset.hash;
    c.header("Cache-Control", current ? "public, max-age=31536000, immutable" : "no-cache");
    c.header("ETag", etag);
    if (c.req.header("if-none-match") === etag) return c.body(null, 304);
    return c.body(asset.body, 200, { "Content-Type": asset.type });
  });
}
