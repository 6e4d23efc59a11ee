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

/** The host ids of the provisioner agents compose runs (their MIKROM_HOST_ID): each has a NATS user. */
export function composeHosts(file: ComposeFile = loadCompose()): string[] {
  return Object.values(file.services).flatMap((svc) => {
    const id = svc.environment?.MIKROM_HOST_ID;
    return typeof id === "string" ? [id] : [];
  });
}

/** One `${NAME…}` in the compose file: the variable, its operator (`:-`, `:?`, …; "" for none), where. */
export interface VariableUse {
  readonly name: string;
  readonly operator: "" | ":-" | "-" | ":?" | "?" | ":+" | "+";
  readonly argument: string;
  /** Where compose reads it, as its errors spell it: `services.api-gateway.environment.JWT_SECRET`. */
  readonly path: string;
}

const REFERENCE = /\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g;

/** Every string value of the file with its path (keys are not interpolated, as in compose). */
function mapStrings(node: unknown, path: string, f: (value: string, path: string) => string): unknown {
  if (typeof node === "string") return f(node, path);
  if (Array.isArray(node)) return node.map((v, i) => mapStrings(v, `${path}[${i}]`, f));
  if (node && typeof node === "object") {
    return Object.fromEntries(
      Object.entries(node).map(([k, v]) => [k, mapStrings(v, path ? `${path}.${k}` : k, f)]),
    );
  }
  return node;
}

/** Every variable the file reads, each time it reads it. */
export function variableUses(file: unknown): VariableUse[] {
  const uses: VariableUse[] = [];
  mapStrings(file, "", (value, path) => {
    for (const m of value.matchAll(REFERENCE)) {
      const name = m[1] ?? m[4];
      if (name)
        uses.push({ name, operator: (m[2] ?? "") as VariableUse["operator"], argument: m[3] ?? "", path });
    }
    return value;
  });
  return uses;
}

/**
 * The file as compose sees it with the variables `env` (the shell's and .env's), by the Compose
 * specification's interpolation: `$$` is a `$`; `${X:-d}` (unset or empty) and `${X-d}` (unset)
 * default; `${X:?msg}` and `${X?msg}` stop with `msg`; `${X:+r}` and `${X+r}` replace. Stops at the
 * first required variable missing, with compose's wording.
 */
export function interpolate<T>(file: T, env: Readonly<Record<string, string | undefined>>): T {
  return mapStrings(file, "", (value, path) =>
    value.replace(REFERENCE, (whole, braced?: string, operator?: string, argument = "", bare?: string) => {
      if (whole === "$$") return "$";
      const name = (braced ?? bare) as string;
      const current = env[name];
      const unset = current === undefined;
      const empty = unset || current === "";
      switch (operator) {
        case ":-":
          return empty ? argument : current;
        case "-":
          return unset ? argument : current;
        case ":?":
        case "?":
          if (operator === ":?" ? empty : unset) {
            throw new Error(
              `error while interpolating ${path}: required variable ${name} is missing a value: ${argument}`,
            );
          }
          return current ?? "";
        case ":+":
          return empty ? "" : argument;
        case "+":
          return unset ? "" : argument;
        default:
          return current ?? "";
      }
    }),
  ) as T;
}
