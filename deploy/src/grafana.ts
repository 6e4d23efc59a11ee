import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { repoRoot } from "./env-reads.ts";

/** A datasource as Grafana is provisioned with it (deploy/grafana/provisioning/datasources). */
export interface GrafanaDatasource {
  name: string;
  uid: string;
  type: string;
  // biome-ignore lint/suspicious/noExplicitAny: provisioning settings are read as plain data
  jsonData?: Record<string, any>;
}

/** Loki's derived field: a value found in a log line (by regex, or a label's value) opens a link. */
export interface DerivedField {
  name: string;
  datasourceUid: string;
  matcherType?: "regex" | "label";
  matcherRegex: string;
  url: string;
}

export function grafanaDatasources(): GrafanaDatasource[] {
  const file = join(repoRoot, "deploy/grafana/provisioning/datasources/datasources.yaml");
  return (parse(readFileSync(file, "utf8")) as { datasources: GrafanaDatasource[] }).datasources;
}

/**
 * A provisioned link or query with Grafana's variables (`${__value.raw}`, `${__trace.traceId}`, …)
 * filled in: `$$` is provisioning's escape for a literal `$`. A variable not given is an error.
 */
export function interpolate(provisioned: string, variables: Record<string, string>): string {
  return provisioned.replaceAll("$$", "$").replace(/\$\{([^}]+)\}/g, (_, name: string) => {
    const value = variables[name];
    if (value === undefined) throw new Error(`no value for \${${name}} in ${provisioned}`);
    return value;
  });
}

/** The part of the collector's configuration read here (the file is YAML, so plain data). */
type CollectorConfig = {
  receivers: Record<
    string,
    { operators: { id?: string; if: string; trace: { trace_id: { parse_from: string } } }[] } | undefined
  >;
};

/**
 * The docker-compose collector's parser of Mikrom's lines: the condition a line must meet (a regex
 * over the raw line) and the JSON field that becomes the log record's trace id (in Loki, the
 * structured metadata `trace_id`).
 */
export function collectorLineParser(): { matches: RegExp; traceIdField: string } {
  const config = parse(
    readFileSync(join(repoRoot, "deploy/otel-collector/compose.yaml"), "utf8"),
  ) as CollectorConfig;
  const parser = config.receivers["filelog/docker"]?.operators.find((o) => o.id === "mikrom");
  if (!parser) throw new Error("the collector's filelog/docker receiver has no 'mikrom' operator");
  // `body matches "<expr string literal>"`: the literal's escapes are JSON's.
  const literal = /matches ("(?:[^"\\]|\\.)*")/.exec(parser.if)?.[1];
  if (!literal) throw new Error(`the collector's mikrom parser has no 'matches' condition: ${parser.if}`);
  return {
    matches: new RegExp(JSON.parse(literal) as string),
    traceIdField: String(parser.trace.trace_id.parse_from).replace(/^attributes\./, ""),
  };
}
