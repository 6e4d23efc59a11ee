/**
 * Rendering the kustomize overlays with the real kustomize (kubectl's), and validating every object:
 * core kinds with the kubernetes-models validators (the Kubernetes API's OpenAPI schemas), the
 * CloudNativePG `Cluster` with a JSON schema written from its CRD's documented fields (crd-schemas.ts).
 */
import { execFileSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { Ajv } from "ajv";
import * as k8s from "kubernetes-models";
import { parseAllDocuments } from "yaml";
import { CRD_SCHEMAS } from "./crd-schemas.ts";

export const k8sDir = join(import.meta.dirname, "..", "k8s");

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

/** The overlays to render, plus the base itself. */
export function kustomizations(): string[] {
  const overlays = readdirSync(join(k8sDir, "overlays")).map((name) => join(k8sDir, "overlays", name));
  return [join(k8sDir, "base"), ...overlays];
}

/** `kubectl kustomize <dir>`, parsed; a missing kubectl is an error that says what to install. */
export function render(dir: string): K8sObject[] {
  let out: string;
  try {
    out = execFileSync("kubectl", ["kustomize", dir], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
  } catch (error) {
    const e = error as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === "ENOENT") {
      throw new Error(
        "kubectl is not installed: the manifests are rendered with `kubectl kustomize` (kustomize v5). " +
          "Install kubectl (https://kubernetes.io/docs/tasks/tools/) and run the tests again.",
      );
    }
    throw new Error(`kubectl kustomize ${dir} failed:\n${e.stderr ?? e.message}`);
  }
  return parseAllDocuments(out).map((doc) => {
    if (doc.errors.length) throw new Error(doc.errors.map((e) => e.message).join("\n"));
    return doc.toJS() as K8sObject;
  });
}

type ModelClass = new (data: unknown) => { validate(): void };

/** apiVersion + kind → the kubernetes-models class, from every group and version the package has. */
function modelIndex(): Map<string, ModelClass> {
  const index = new Map<string, ModelClass>();
  const visit = (exports: Record<string, unknown>, depth: number): void => {
    for (const candidate of Object.values(exports)) {
      const c = candidate as { apiVersion?: unknown; kind?: unknown };
      if (typeof candidate === "function" && typeof c.apiVersion === "string" && typeof c.kind === "string") {
        index.set(`${c.apiVersion}/${c.kind}`, candidate as unknown as ModelClass);
      } else if (candidate && typeof candidate === "object" && depth < 2) {
        // Groups hold versions (apps.v1); the core group is a version itself (v1).
        visit(candidate as Record<string, unknown>, depth + 1);
      }
    }
  };
  visit(k8s as unknown as Record<string, unknown>, 0);
  return index;
}

const models = modelIndex();
const ajv = new Ajv({ allErrors: true, strict: false });
const crdValidators = new Map(
  Object.entries(CRD_SCHEMAS).map(([key, schema]) => [key, ajv.compile(schema)] as const),
);

/** What is wrong with one object; empty when it is valid. */
export function validateObject(obj: K8sObject): string[] {
  const key = `${obj.apiVersion}/${obj.kind}`;
  const where = `${obj.kind}/${obj.metadata?.name}`;
  const crd = crdValidators.get(key);
  if (crd) {
    return crd(obj) ? [] : (crd.errors ?? []).map((e) => `${where}: ${e.instancePath} ${e.message}`);
  }
  const Model = models.get(key);
  if (!Model) return [`${where}: no schema for ${key} (neither a Kubernetes kind nor a known CRD)`];
  try {
    new Model(obj).validate();
    return [];
  } catch (error) {
    return [`${where}: ${(error as Error).message}`];
  }
}
