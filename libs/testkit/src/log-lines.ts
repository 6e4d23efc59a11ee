import { expect } from "vitest";

export type LogLine = Record<string, unknown>;

const ISO_WITH_ZONE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const LEVEL_WORDS = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

/** Parses one emitted line and checks the fields every Mikrom log line must have. */
export function parseLogLine(line: string): LogLine {
  const entry = JSON.parse(line) as LogLine;
  expect(entry.timestamp, line).toMatch(ISO_WITH_ZONE);
  expect(LEVEL_WORDS, line).toContain(entry.level);
  expect(typeof entry.logger, line).toBe("string");
  expect(typeof entry.message, line).toBe("string");
  expect(typeof entry.service, line).toBe("string");
  if (entry.trace_id !== undefined) expect(entry.trace_id).toMatch(/^[0-9a-f]{32}$/);
  if (entry.span_id !== undefined) expect(entry.span_id).toMatch(/^[0-9a-f]{16}$/);
  return entry;
}

/** A log destination that keeps every line (checked as it arrives) for assertions. */
export function captureLogs(): { lines: LogLine[]; write(line: string): void } {
  const lines: LogLine[] = [];
  return {
    lines,
    write(line: string) {
      for (const one of line.split("\n")) if (one.trim() !== "") lines.push(parseLogLine(one));
    },
  };
}
