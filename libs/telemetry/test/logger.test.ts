import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { captureLogs, type LogLine } from "@mikrom/testkit";
import { context, trace } from "@opentelemetry/api";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createLogger, errorFields, REDACTED, setLogDestination, withContext } from "../src/index.ts";
import { isoTimestamp } from "../src/logger.ts";
import { formatText } from "../src/text-format.ts";

let captured: { lines: LogLine[]; write(line: string): void };
beforeEach(() => {
  captured = captureLogs();
  setLogDestination(captured);
});
afterEach(() => setLogDestination(undefined));

const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN_ID = "00f067aa0ba902b7";

describe("the logger", () => {
  it("writes one JSON object per line with timestamp, level word, logger, message and service", () => {
    createLogger("mikrom.test.logger").info({ duration_ms: 12.5 }, "VM running");
    expect(captured.lines).toHaveLength(1);
    expect(captured.lines[0]).toMatchObject({
      level: "INFO",
      logger: "mikrom.test.logger",
      message: "VM running",
      duration_ms: 12.5,
    });
    expect(Date.parse(String(captured.lines[0]!.timestamp))).not.toBeNaN();
  });

  it("carries the active span's trace and span ids and the LogContext fields", () => {
    const log = createLogger("mikrom.test.logger");
    const ctx = trace.setSpanContext(context.active(), { traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: 1 });
    context.with(ctx, () =>
      withContext(
        { user_id: "u-1", user_name: "ada", request_id: "r-1", vm_id: "srv-01020304", action: "vm.stop" },
        () => log.warn("Stopping"),
      ),
    );
    expect(captured.lines[0]).toMatchObject({
      level: "WARN",
      trace_id: TRACE_ID,
      span_id: SPAN_ID,
      user_id: "u-1",
      user_name: "ada",
      request_id: "r-1",
      vm_id: "srv-01020304",
      action: "vm.stop",
    });
  });

  it("leaves trace and context fields out when there are none", () => {
    createLogger("mikrom.test.logger").info("Started");
    expect(Object.keys(captured.lines[0]!).sort()).toEqual([
      "level",
      "logger",
      "message",
      "service",
      "timestamp",
    ]);
  });

  it("redacts passwords, tokens, authorization headers and keys wherever they appear", () => {
    const request = {
      body: { username: "ada", password: "hunter2", new_password: "hunter3" },
      headers: { Authorization: "Bearer eyJhbGciOi.payload.sig", "content-type": "application/json" },
      tokens: [{ access_token: "at-1", refresh_token: "rt-1" }],
      api_key: "k-1",
      nested: { deeper: { secret: "s", private_key: "pk", cookie: "c=1" } },
      database_url: "postgres://mikrom:pg-secret@db:5432/mikrom",
      note: "sent Authorization: Bearer abc.def.ghi upstream",
      token: "t",
    };
    createLogger("mikrom.test.logger").info({ request, password: "top" }, "Login attempt");
    const line = captured.lines[0]!;
    const text = JSON.stringify(line);
    for (const secret of [
      "hunter2",
      "hunter3",
      "eyJhbGciOi",
      "at-1",
      "rt-1",
      "k-1",
      "pg-secret",
      "abc.def.ghi",
      "pk",
    ]) {
      expect(text).not.toContain(secret);
    }
    expect(line.password).toBe(REDACTED);
    const logged = line.request as typeof request;
    expect(logged.body).toEqual({ username: "ada", password: REDACTED, new_password: REDACTED });
    expect(logged.headers).toEqual({ Authorization: REDACTED, "content-type": "application/json" });
    expect(logged.token).toBe(REDACTED);
    expect(logged.database_url).toBe(`postgres://mikrom:${REDACTED}@db:5432/mikrom`);
    // The caller's object is not changed.
    expect(request.body.password).toBe("hunter2");
  });

  it("flattens a logged error into error, error_type and stack", () => {
    class ConcurrencyConflict extends Error {}
    createLogger("mikrom.test.logger").error(
      { err: new ConcurrencyConflict("stream moved on") },
      "Append failed",
    );
    const line = captured.lines[0]!;
    expect(line).toMatchObject({
      level: "ERROR",
      error: "stream moved on",
      error_type: "ConcurrencyConflict",
    });
    expect(String(line.stack)).toMatch(/^Error: stream moved on\n\s+at /);
    expect(line.err).toBeUndefined();
  });

  it("describes a thrown non-error too", () => {
    expect(errorFields("boom")).toEqual({ error: "boom", error_type: "string" });
    const named = new TypeError("bad");
    expect(errorFields(named)).toMatchObject({ error: "bad", error_type: "TypeError" });
  });

  it("sends lines of loggers created before the destination changed to the new destination", () => {
    const early = createLogger("mikrom.test.early");
    const second = captureLogs();
    setLogDestination(second);
    early.info("After the switch");
    expect(captured.lines).toHaveLength(0);
    expect(second.lines[0]).toMatchObject({ logger: "mikrom.test.early", message: "After the switch" });
  });
});

describe("LOG_LEVEL", () => {
  it("filters lines below the level it names", async () => {
    vi.stubEnv("LOG_LEVEL", "WARNING");
    vi.resetModules();
    try {
      const fresh = await import("../src/logger.ts");
      const lines = captureLogs();
      fresh.setLogDestination(lines);
      const log = fresh.createLogger("mikrom.test.level");
      log.info("hidden");
      log.debug("hidden");
      log.warn("shown");
      log.error("shown too");
      expect(lines.lines.map((l) => l.level)).toEqual(["WARN", "ERROR"]);
    } finally {
      vi.unstubAllEnvs();
    }
  });
});

describe("LOG_FORMAT=text", () => {
  it("turns a JSON line into one readable line with the extras as key=value", () => {
    const line = JSON.stringify({
      level: "INFO",
      timestamp: "2026-02-01T17:37:39.177Z",
      logger: "mikrom.http",
      service: "api-gateway",
      message: "Request completed",
      status_code: 200,
      path: "/api/v1/vms",
      user_name: "Ada Lovelace",
    });
    expect(formatText(line)).toBe(
      '2026-02-01T17:37:39.177Z INFO  api-gateway/mikrom.http  Request completed  status_code=200 path=/api/v1/vms user_name="Ada Lovelace"\n',
    );
  });

  it("is what a process prints on stdout when it asks for text", () => {
    const root = fileURLToPath(new URL("..", import.meta.url));
    const out = execFileSync(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        'import { createLogger } from "@mikrom/telemetry"; createLogger("mikrom.text").info({ password: "p", n: 1 }, "Hello there");',
      ],
      {
        cwd: root,
        env: { ...process.env, LOG_FORMAT: "text", OTEL_SERVICE_NAME: "texty" },
        encoding: "utf8",
      },
    );
    expect(out).toMatch(
      /^\d{4}-\d\d-\d\dT[\d:.]+Z INFO {2}texty\/mikrom\.text {2}Hello there {2}password=\[REDACTED\] n=1\n$/,
    );
  });
});

describe("the timestamp", () => {
  it("is what Date#toISOString gives, across second, day and year boundaries", () => {
    const instants = [0, 9, 99, 999, 1000, 1_767_225_599_999, 1_767_225_600_000, 951_782_400_123];
    for (let t = 1_767_225_599_990; t < 1_767_225_600_010; t++) instants.push(t);
    for (const t of instants) expect(isoTimestamp(t)).toBe(`,"timestamp":"${new Date(t).toISOString()}"`);
  });
});
