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

describe("the OpenAPI document", () => {
  it("keeps every path, method, parameter, request body and response it ever promised", async () => {
    const live = promises(await liveDocument());
    const lost = [...promises(BEFORE)].filter((promise) => !live.has(promise));
    expect(lost).toEqual([]);
  });
});
