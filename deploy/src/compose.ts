/** The repository's docker-compose.yml, parsed as compose reads it (YAML merge keys resolved). */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { repoRoot } from "./env-reads.ts";

export interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string; args?: Record<string, string>; target?: string };
  environment?: Record<string, string | number | boolean | null>;
  healthcheck?: { test: string[] | string };
  volumes?: string[];
  devices?: string[];
  cap_add?: string[];
  user?: string;
  depends_on?: Record<string, { condition: string }> | string[];
  [field: string]: unknown;
}

export interface ComposeFile {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
  [field: string]: unknown;
}

export const composePath = join(repoRoot, "docker-compose.yml");

export function loadCompose(text = readFileSync(composePath, "utf8")): ComposeFile {
  return parse(text, { merge: true }) as ComposeFile;
}
