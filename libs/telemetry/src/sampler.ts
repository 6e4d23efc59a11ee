import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  ParentBasedSampler,
  type Sampler,
  TraceIdRatioBasedSampler,
} from "@opentelemetry/sdk-trace";

type Env = Record<string, string | undefined>;

function ratio(raw: string | undefined): number | undefined {
  if (raw === undefined || raw.trim() === "") return undefined;
  const value = Number(raw);
  return Number.isFinite(value) && value >= 0 && value <= 1 ? value : undefined;
}

function ratioSampler(value: number): Sampler {
  if (value >= 1) return new AlwaysOnSampler();
  if (value <= 0) return new AlwaysOffSampler();
  return new TraceIdRatioBasedSampler(value);
}

/**
 * The sampler for traces this process starts. Always parent-based: a span with a parent (a consumer, a
 * request carrying `traceparent`) follows its parent's decision, so a trace is whole in every process or
 * absent from all of them. The root decision comes from `OTEL_TRACE_SAMPLE_RATE` (0..1) if set, else the
 * standard `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` (the non-parent-based names are read as their
 * parent-based twins), else always on.
 */
export function samplerFromEnv(env: Env = process.env): Sampler {
  return new ParentBasedSampler({ root: rootSampler(env) });
}

export function rootSampler(env: Env): Sampler {
  const rate = ratio(env.OTEL_TRACE_SAMPLE_RATE);
  if (rate !== undefined) return ratioSampler(rate);
  switch (env.OTEL_TRACES_SAMPLER?.trim().toLowerCase()) {
    case "always_off":
    case "parentbased_always_off":
      return new AlwaysOffSampler();
    case "traceidratio":
    case "parentbased_traceidratio":
      return ratioSampler(ratio(env.OTEL_TRACES_SAMPLER_ARG) ?? 1);
    default:
      return new AlwaysOnSampler();
  }
}
