/**
 * The rule the deployment files follow: every variable a service reads (env-reads.ts) is set for
 * it, in compose and in the manifests, and nothing else is; with three documented exceptions.
 */

/** Set by the operating system, the image or npm, never by a deployment: the services only fall back on them. */
export const PLATFORM = new Set(["HOME", "PATH", "XDG_CACHE_HOME", "XDG_RUNTIME_DIR", "npm_package_version"]);

/**
 * OpenTelemetry's standard variables are read by the SDK (and some by libs/telemetry): a deployment
 * sets those it needs and leaves the rest to their defaults. One set is allowed when the code reads
 * it or the SDK does (OTEL_RESOURCE_ATTRIBUTES); none is required.
 */
export const OTEL_READ_BY_SDK = new Set(["OTEL_RESOURCE_ATTRIBUTES"]);

export const isOtel = (name: string): boolean => name.startsWith("OTEL_");

/**
 * A manifest's own inputs: variables a container gets only to build others from them (`$(NAME)` in
 * a later value), such as a host's passwords inside its URLs. Kubernetes passes them on as well; the
 * service reads the URLs.
 */
export function composedInputs(env: ReadonlyArray<{ name: string; value?: string }>): Set<string> {
  // `$$` is a literal `$`: `$$(NAME)` names nothing.
  const refs = (value: string): string[] =>
    [...value.matchAll(/\$\$|\$\((\w+)\)/g)].flatMap((m) => m[1] ?? []);
  const used = new Set(env.flatMap((e) => refs(e.value ?? "")));
  return new Set(env.map((e) => e.name).filter((name) => used.has(name)));
}

/** The variables a deployment must set for a service that reads `reads`. */
export function required(reads: ReadonlySet<string>): Set<string> {
  return new Set([...reads].filter((n) => !PLATFORM.has(n) && !isOtel(n)));
}

/** What is wrong with the variables `set` for a service that reads `reads`; empty when nothing is. */
export function envProblems(reads: ReadonlySet<string>, set: ReadonlySet<string>): string[] {
  const problems: string[] = [];
  for (const name of [...required(reads)].sort()) {
    if (!set.has(name)) problems.push(`${name} is read but not set`);
  }
  for (const name of [...set].sort()) {
    if (PLATFORM.has(name)) {
      problems.push(`${name} is the platform's, not the deployment's`);
    } else if (isOtel(name)) {
      if (!reads.has(name) && !OTEL_READ_BY_SDK.has(name))
        problems.push(`${name} is set but nothing reads it`);
    } else if (!reads.has(name)) {
      problems.push(`${name} is set but the service does not read it`);
    }
  }
  return problems;
}
