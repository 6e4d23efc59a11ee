/**
 * LOG_FORMAT=text: a JSON log line turned into one line a human can read
 * (`2026-02-01T17:37:39.177Z INFO  mikrom.api.http  Request completed  status=200 duration_ms=3.1 trace_id=…`),
 * with a stack, if any, on the lines after it. pino-pretty is not a dependency; this is all it needs.
 */

const HEAD = new Set(["timestamp", "level", "logger", "message", "service", "stack"]);

function show(value: unknown): string {
  if (typeof value === "string") return /[\s"=]/.test(value) ? JSON.stringify(value) : value;
  return JSON.stringify(value) ?? String(value);
}

export function formatText(line: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const parts = [
    String(entry.timestamp ?? ""),
    String(entry.level ?? "").padEnd(5),
    `${String(entry.service ?? "")}/${String(entry.logger ?? "")}`,
    ` ${String(entry.message ?? "")} `,
  ];
  for (const [key, value] of Object.entries(entry)) {
    if (!HEAD.has(key) && value !== undefined) parts.push(`${key}=${show(value)}`);
  }
  const stack = typeof entry.stack === "string" ? `\n    ${entry.stack.split("\n").join("\n    ")}` : "";
  return `${parts.join(" ")}${stack}\n`;
}
