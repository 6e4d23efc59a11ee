import { z } from "zod";
import { urlCredentialProblem } from "./secrets.ts";

/** No placeholder password inside a URL (an example's `change-me` copied into a deployment). */
const withoutPlaceholderPassword = (url: string, ctx: z.RefinementCtx): void => {
  const problem = urlCredentialProblem(url);
  if (problem) ctx.addIssue({ code: "custom", message: problem });
};

/** The variables every service reads, named the same everywhere (compose, manifests, docs). */
export const BaseEnv = z.object({
  NATS_URL: z.string().min(1).superRefine(withoutPlaceholderPassword).default("nats://127.0.0.1:4222"),
  /** A server and a base database name; each service keeps its own database derived from it. */
  DATABASE_URL: z
    .url()
    .superRefine(withoutPlaceholderPassword)
    .default("postgres://postgres@127.0.0.1:5432/mikrom"),
  MIKROM_NAMESPACE: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/, "letters, digits, '-' and '_' only")
    .default("mikrom"),
  /** JetStream replicas of the streams: 1 on one server, 3 in a cluster (every service declares them alike). */
  MIKROM_STREAM_REPLICAS: z.coerce.number().int().min(1).max(5).default(1),
  /** A worker's `/health/live` and `/health/ready` (the gateway answers health on its API port). */
  HEALTH_PORT: z.coerce.number().int().min(1).max(65535).optional(),
  LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
  LOG_FORMAT: z.enum(["json", "text"]).default("json"),
});

/** Parses the environment once at start; a bad environment fails naming every variable at fault. */
export function parseEnv<S extends z.ZodType>(
  service: string,
  schema: S,
  env: Record<string, string | undefined> = process.env,
): z.infer<S> {
  const parsed = schema.safeParse(env);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((i) => `${i.path.join(".") || "(env)"}: ${i.message}`);
  throw new Error(`${service} configuration is invalid:\n  ${problems.join("\n  ")}`);
}
