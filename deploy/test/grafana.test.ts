import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { parse } from "yaml";
import { METRIC_SOURCES, METRICS } from "../src/dashboard.ts";
import { repoRoot } from "../src/env-reads.ts";
import { grafanaDatasources } from "../src/grafana.ts";

const deploy = join(repoRoot, "deploy");
// biome-ignore lint/suspicious/noExplicitAny: provisioning files are walked as plain data
type Any = any;
const datasources = grafanaDatasources() as Any[];
const byUid = new Map(datasources.map((d) => [d.uid, d]));
const dashboard = JSON.parse(readFileSync(join(deploy, "grafana/dashboards/mikrom.json"), "utf8"));

describe("Grafana provisioning", () => {
  test("Tempo's spans link to their logs in Loki, by trace id", () => {
    const tempo = byUid.get("tempo");
    expect(tempo.type).toBe("tempo");
    const link = tempo.jsonData.tracesToLogsV2;
    expect(byUid.get(link.datasourceUid)?.type).toBe("loki");
    expect(link.query).toContain("trace_id");
    expect(link.query).toContain("$${__trace.traceId}"); // `$$` is provisioning's escape for `$`
  });

  test("Loki's trace_id opens the trace in Tempo", () => {
    const loki = byUid.get("loki");
    const fields = loki.jsonData.derivedFields as Any[];
    expect(fields.length).toBeGreaterThan(0);
    for (const f of fields) expect(byUid.get(f.datasourceUid)?.type).toBe("tempo");
    expect(fields.find((f) => f.matcherType === "label").matcherRegex).toBe("trace_id");
    const json = fields.find((f) => f.matcherType !== "label");
    const line = '{"level":"INFO","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","message":"x"}';
    expect(new RegExp(json.matcherRegex).exec(line)?.[1]).toBe("4bf92f3577b34da6a3ce929d0e0e4736");
  });

  test("the collector keeps trace_id on log records and sends traces to Tempo, logs to Loki", () => {
    for (const file of ["deploy/otel-collector/compose.yaml", "deploy/k8s/base/otel-collector/config.yaml"]) {
      const config = parse(readFileSync(join(repoRoot, file), "utf8")) as Any;
      const receiver = Object.entries(config.receivers).find(([name]) =>
        name.startsWith("filelog"),
      )![1] as Any;
      const parser = receiver.operators.find((o: Any) => o.id === "mikrom");
      expect(parser.trace.trace_id.parse_from).toBe("attributes.trace_id");
      const { pipelines } = config.service;
      expect(pipelines.traces.exporters).toEqual(["otlp/tempo"]);
      expect(pipelines.logs.exporters).toEqual(["otlphttp/loki"]);
      for (const p of Object.values(pipelines) as Any[]) {
        for (const name of [...p.receivers, ...p.processors, ...p.exporters]) {
          expect({ ...config.receivers, ...config.processors, ...config.exporters }).toHaveProperty([name]);
        }
      }
    }
  });

  test("the dashboard shows requests, VM lifecycle durations, failures and backlog from metrics that exist", () => {
    const titles = dashboard.panels.map((p: Any) => p.title).join(" | ");
    for (const want of ["Requests", "VM lifecycle", "Failures", "backlog"]) expect(titles).toContain(want);
    const exprs = dashboard.panels.flatMap((p: Any) => p.targets.map((t: Any) => t.expr)).join("\n");
    for (const [otel, prom] of Object.entries(METRICS)) {
      expect(exprs, prom).toContain(prom);
      // The instrument is really created under this name in a library or a service.
      const libs = METRIC_SOURCES.map((f) => readFileSync(join(repoRoot, f), "utf8")).join("\n");
      expect(libs, otel).toContain(`"${otel}"`);
    }
    for (const p of dashboard.panels) expect(byUid.has(p.datasource.uid)).toBe(true);
  });
});
