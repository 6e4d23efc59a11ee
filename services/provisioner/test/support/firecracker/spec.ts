import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Ajv, type ValidateFunction } from "ajv";
import { parse } from "yaml";

/**
 * Firecracker's official API description (Swagger 2.0, v1.16.1, Apache-2.0; a copy of
 * shared/reference/firecracker-swagger.yaml) turned into a request matcher and JSON-schema
 * validators for the fake server.
 */
export const FIRECRACKER_SPEC_FILE = join(
  dirname(fileURLToPath(import.meta.url)),
  "firecracker-swagger.yaml",
);

export type Phase = "pre-boot" | "post-boot" | "any";

export interface Operation {
  method: string;
  /** The spec's path template, e.g. /drives/{drive_id}. */
  path: string;
  operationId: string;
  pathParams: string[];
  /** Undefined when the operation takes no body. */
  body?: { required: boolean; definition: string | undefined; validate: ValidateFunction };
  /** From the summary ("Pre-boot only." / "Post-boot only."): when Firecracker accepts it. */
  phase: Phase;
  /** Response codes the spec lists (besides `default`). */
  responses: number[];
}

export interface MatchedOperation {
  operation: Operation;
  params: Record<string, string>;
}

interface SwaggerParameter {
  name: string;
  in: string;
  required?: boolean;
  schema?: { $ref?: string };
}
interface SwaggerOperation {
  operationId: string;
  summary?: string;
  parameters?: SwaggerParameter[];
  responses: Record<string, unknown>;
}
interface SwaggerDocument {
  info: { version: string };
  paths: Record<string, Record<string, SwaggerOperation>>;
  definitions: Record<string, Record<string, unknown>>;
}

export interface FirecrackerSpec {
  version: string;
  operations: Operation[];
  match(method: string, path: string): MatchedOperation | "wrong-method" | undefined;
  /** A validator for one of the spec's definitions (responses are checked with these). */
  definition(name: string): ValidateFunction;
}

export interface LoadSpecOptions {
  file?: string;
  /**
   * Reject fields the spec does not name. The spec's objects do not say
   * `additionalProperties: false`, but Firecracker parses with serde's deny_unknown_fields, so a
   * misspelled field is an error there too.
   */
  rejectUnknownFields?: boolean;
}

export function loadFirecrackerSpec(options: LoadSpecOptions = {}): FirecrackerSpec {
  const document = parse(readFileSync(options.file ?? FIRECRACKER_SPEC_FILE, "utf8")) as SwaggerDocument;
  const definitions = structuredClone(document.definitions);
  if (options.rejectUnknownFields ?? true) {
    for (const schema of Object.values(definitions)) closeObjects(schema);
  }
  // Swagger 2.0 schemas are JSON Schema draft 4 plus a few keywords (readOnly, example): non-strict
  // mode ignores those. One format is a regular expression (MmdsConfig.ipv4_address): register it
  // as such, with the other formats the spec names.
  const ajv = new Ajv({ strict: false, allErrors: true, logger: false });
  ajv.addFormat("int32", {
    type: "number",
    validate: (n: number) => Number.isInteger(n) && Math.abs(n) < 2 ** 31,
  });
  ajv.addFormat("int64", { type: "number", validate: (n: number) => Number.isInteger(n) });
  for (const schema of Object.values(definitions)) registerRegexFormats(ajv, schema);
  ajv.addSchema({ $id: "firecracker", definitions }, "firecracker");
  const validators = new Map<string, ValidateFunction>();
  const definition = (name: string): ValidateFunction => {
    let validate = validators.get(name);
    if (!validate) {
      validate = ajv.compile({ $ref: `firecracker#/definitions/${name}` });
      validators.set(name, validate);
    }
    return validate;
  };

  const operations: Operation[] = [];
  for (const [path, methods] of Object.entries(document.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const params = op.parameters ?? [];
      const bodyParam = params.find((p) => p.in === "body");
      const ref = bodyParam?.schema?.$ref?.replace("#/definitions/", "");
      const summary = op.summary ?? "";
      operations.push({
        method: method.toUpperCase(),
        path,
        operationId: op.operationId,
        pathParams: params.filter((p) => p.in === "path").map((p) => p.name),
        ...(bodyParam
          ? {
              body: {
                required: bodyParam.required === true,
                definition: ref,
                validate: ref ? definition(ref) : ajv.compile(bodyParam.schema ?? {}),
              },
            }
          : {}),
        phase: /pre-boot only/i.test(summary)
          ? "pre-boot"
          : /post-boot only/i.test(summary)
            ? "post-boot"
            : "any",
        responses: Object.keys(op.responses)
          .filter((code) => code !== "default")
          .map(Number),
      });
    }
  }

  const templates = [...new Set(operations.map((o) => o.path))].map((template) => ({
    template,
    regex: new RegExp(`^${template.replace(/\{[^}]+\}/g, "([^/]+)")}$`),
    names: [...template.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!),
  }));

  return {
    version: document.info.version,
    operations,
    definition,
    match(method, path) {
      for (const { template, regex, names } of templates) {
        const found = regex.exec(path);
        if (!found) continue;
        const operation = operations.find((o) => o.path === template && o.method === method.toUpperCase());
        if (!operation) return "wrong-method";
        const params: Record<string, string> = {};
        names.forEach((name, i) => {
          params[name] = decodeURIComponent(found[i + 1]!);
        });
        return { operation, params };
      }
      return undefined;
    },
  };
}

/** Sets additionalProperties: false on every object schema that names its properties and says nothing. */
function closeObjects(schema: unknown): void {
  if (!schema || typeof schema !== "object") return;
  const node = schema as Record<string, unknown>;
  if (node.properties && typeof node.properties === "object" && node.additionalProperties === undefined) {
    node.additionalProperties = false;
  }
  for (const value of Object.values(node)) {
    for (const item of Array.isArray(value) ? value : [value]) closeObjects(item);
  }
}

/** Formats that are not names but regular expressions become anchored-pattern formats. */
function registerRegexFormats(ajv: Ajv, schema: unknown): void {
  if (!schema || typeof schema !== "object") return;
  const node = schema as Record<string, unknown>;
  if (typeof node.format === "string" && /[()[\]|\\]/.test(node.format) && !ajv.formats[node.format]) {
    ajv.addFormat(node.format, new RegExp(`^${node.format}$`));
  }
  for (const value of Object.values(node)) {
    for (const item of Array.isArray(value) ? value : [value]) registerRegexFormats(ajv, item);
  }
}
