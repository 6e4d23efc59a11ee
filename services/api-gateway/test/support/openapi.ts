import { openDatabase } from "@mikrom/runtime";
import { createApp, type Gateway } from "../../src/app.ts";
import type { GatewayDb } from "../../src/store/db.ts";
import { offlineBackend, TEST_CONFIG } from "./gateway.ts";

/** An OpenAPI document as far as these tests read it. */
export interface OpenApiDocument {
  readonly paths: Record<string, Record<string, Operation>>;
}
interface Operation {
  readonly parameters?: ReadonlyArray<{ name: string; in: string }>;
  readonly requestBody?: { content: Record<string, unknown> };
  readonly responses: Record<string, { content?: Record<string, unknown> }>;
}

/**
 * The gateway app for tests that only look at its routes and its document: no request reaches the
 * database (its pool connects on first use) or a backend.
 */
export function offlineApp(): Gateway["app"] {
  const db = openDatabase<GatewayDb>("postgres://postgres@127.0.0.1:5432/unused", { max: 1 });
  return createApp({ config: TEST_CONFIG, db, backend: offlineBackend }).app;
}

/**
 * Every promise a document makes, one string each: an operation, each of its parameters, each media
 * type of its request body, each response status and each media type of that response.
 */
export function promises(doc: OpenApiDocument): Set<string> {
  const out = new Set<string>();
  for (const [path, operations] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(operations)) {
      const at = `${method.toUpperCase()} ${path}`;
      out.add(at);
      for (const p of op.parameters ?? []) out.add(`${at} parameter ${p.in}:${p.name}`);
      for (const type of Object.keys(op.requestBody?.content ?? {})) out.add(`${at} body ${type}`);
      for (const [status, response] of Object.entries(op.responses)) {
        out.add(`${at} ${status}`);
        for (const type of Object.keys(response.content ?? {})) out.add(`${at} ${status} ${type}`);
      }
    }
  }
  return out;
}
