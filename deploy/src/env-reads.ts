/**
 * What each service reads from its environment, found in the code itself (TypeScript's parser over
 * the service's sources and the workspace libraries it depends on), so the deployment check cannot
 * drift from the services: a variable added to a config.ts shows up here with no list to update.
 *
 * Found: the keys of zod environment schemas (a variable named `Env` or `BaseEnv`, `BaseEnv.extend`
 * included), `env.NAME` / `process.env.NAME` / `env["NAME"]`, and `pick("NAME")` (the drivers).
 * Names built at run time (`OTEL_EXPORTER_OTLP_${signal}_ENDPOINT`) are not found: OTEL_* variables
 * are governed by a rule of their own (env-policy.ts).
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import ts from "typescript";
import type { Service } from "./nats-permissions.ts";

export const repoRoot = join(import.meta.dirname, "..", "..");

const SCHEMA_VARIABLES = new Set(["Env", "BaseEnv"]);
/** Variables are upper case; npm sets lower-case `npm_*` ones. */
const NAME = /^([A-Z][A-Z0-9_]*|npm_[a-z_]+)$/;
const UPPER = /^[A-Z][A-Z0-9_]*$/;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return path.endsWith(".ts") && !path.endsWith(".d.ts") ? [path] : [];
  });
}

/** The package and every `@mikrom/*` workspace package it depends on, transitively. */
export function packageDirs(packageDir: string, seen = new Set<string>()): string[] {
  if (seen.has(packageDir)) return [];
  seen.add(packageDir);
  const manifest = JSON.parse(readFileSync(join(packageDir, "package.json"), "utf8")) as {
    dependencies?: Record<string, string>;
  };
  const libs = Object.keys(manifest.dependencies ?? {})
    .filter((name) => name.startsWith("@mikrom/"))
    .map((name) => join(repoRoot, "libs", name.slice("@mikrom/".length)));
  return [packageDir, ...libs.flatMap((dir) => packageDirs(dir, seen))];
}

function isEnvObject(node: ts.Expression): boolean {
  if (ts.isIdentifier(node)) return node.text === "env";
  // process.env (not Hono's `c.env`, which holds the request's bindings)
  return (
    ts.isPropertyAccessExpression(node) &&
    node.name.text === "env" &&
    ts.isIdentifier(node.expression) &&
    node.expression.text === "process"
  );
}

/** The variable names one source file reads. */
export function readsOfSource(text: string, fileName = "file.ts"): Set<string> {
  const found = new Set<string>();
  const file = ts.createSourceFile(fileName, text, ts.ScriptTarget.ES2022, true);
  const schemaKeys = (node: ts.Node): void => {
    if (ts.isObjectLiteralExpression(node)) {
      for (const p of node.properties) {
        if (p.name && (ts.isIdentifier(p.name) || ts.isStringLiteral(p.name)) && UPPER.test(p.name.text)) {
          found.add(p.name.text);
        }
      }
      return; // nested objects are values, not variables
    }
    ts.forEachChild(node, schemaKeys);
  };
  const visit = (node: ts.Node): void => {
    if (
      ts.isVariableDeclaration(node) &&
      ts.isIdentifier(node.name) &&
      SCHEMA_VARIABLES.has(node.name.text) &&
      node.initializer
    ) {
      schemaKeys(node.initializer);
    } else if (
      ts.isPropertyAccessExpression(node) &&
      isEnvObject(node.expression) &&
      NAME.test(node.name.text)
    ) {
      found.add(node.name.text);
    } else if (
      ts.isElementAccessExpression(node) &&
      isEnvObject(node.expression) &&
      ts.isStringLiteralLike(node.argumentExpression)
    ) {
      found.add(node.argumentExpression.text);
    } else if (
      ts.isCallExpression(node) &&
      ts.isIdentifier(node.expression) &&
      node.expression.text === "pick" &&
      node.arguments[0] &&
      ts.isStringLiteralLike(node.arguments[0])
    ) {
      found.add(node.arguments[0].text);
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  return found;
}

const byPackage = new Map<string, Set<string>>();

function readsOfPackage(dir: string): Set<string> {
  let reads = byPackage.get(dir);
  if (!reads) {
    reads = new Set();
    for (const file of sourceFiles(join(dir, "src"))) {
      for (const name of readsOfSource(readFileSync(file, "utf8"), file)) reads.add(name);
    }
    byPackage.set(dir, reads);
  }
  return reads;
}

/** Every variable a service's process reads: its own sources and its workspace libraries'. */
export function envReads(service: Service): Set<string> {
  return new Set(packageDirs(join(repoRoot, "services", service)).flatMap((dir) => [...readsOfPackage(dir)]));
}
