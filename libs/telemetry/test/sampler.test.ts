import { randomBytes } from "node:crypto";
import { context, ROOT_CONTEXT, SpanKind, trace } from "@opentelemetry/api";
import { SamplingDecision } from "@opentelemetry/sdk-trace";
import { describe, expect, it } from "vitest";
import { samplerFromEnv } from "../src/sampler.ts";

const ROOT_TRACE_IDS = Array.from({ length: 400 }, () => randomBytes(16).toString("hex"));

function sampledRoots(env: Record<string, string>): number {
  const sampler = samplerFromEnv(env);
  return ROOT_TRACE_IDS.filter(
    (traceId) =>
      sampler.shouldSample(ROOT_CONTEXT, traceId, "op", SpanKind.INTERNAL, {}, []).decision ===
      SamplingDecision.RECORD_AND_SAMPLED,
  ).length;
}

function decisionUnder(env: Record<string, string>, parentSampled: boolean): SamplingDecision {
  const parent = trace.setSpanContext(context.active(), {
    traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
    spanId: "00f067aa0ba902b7",
    traceFlags: parentSampled ? 1 : 0,
    isRemote: true,
  });
  return samplerFromEnv(env).shouldSample(
    parent,
    "4bf92f3577b34da6a3ce929d0e0e4736",
    "op",
    SpanKind.CONSUMER,
    {},
    [],
  ).decision;
}

describe("the sampler", () => {
  it("samples every root trace by default", () => {
    expect(sampledRoots({})).toBe(ROOT_TRACE_IDS.length);
  });

  it("samples no root trace at OTEL_TRACE_SAMPLE_RATE=0, and some but not all at 0.5", () => {
    expect(sampledRoots({ OTEL_TRACE_SAMPLE_RATE: "0" })).toBe(0);
    const half = sampledRoots({ OTEL_TRACE_SAMPLE_RATE: "0.5" });
    expect(half).toBeGreaterThan(0);
    expect(half).toBeLessThan(ROOT_TRACE_IDS.length);
  });

  it("reads the standard OTEL_TRACES_SAMPLER and its argument when no rate is set", () => {
    expect(sampledRoots({ OTEL_TRACES_SAMPLER: "always_off" })).toBe(0);
    expect(
      sampledRoots({ OTEL_TRACES_SAMPLER: "parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG: "0" }),
    ).toBe(0);
    expect(sampledRoots({ OTEL_TRACES_SAMPLER: "traceidratio", OTEL_TRACES_SAMPLER_ARG: "1" })).toBe(400);
  });

  it("follows the parent's decision whatever the root setting", () => {
    expect(decisionUnder({ OTEL_TRACE_SAMPLE_RATE: "0" }, true)).toBe(SamplingDecision.RECORD_AND_SAMPLED);
    expect(decisionUnder({ OTEL_TRACES_SAMPLER: "always_on" }, false)).toBe(SamplingDecision.NOT_RECORD);
  });
});
