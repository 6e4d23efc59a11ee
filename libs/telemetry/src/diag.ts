import { type DiagLogger, DiagLogLevel, diag } from "@opentelemetry/api";
import { createLogger } from "./logger.ts";

const LEVELS: Record<string, DiagLogLevel> = {
  none: DiagLogLevel.NONE,
  error: DiagLogLevel.ERROR,
  warn: DiagLogLevel.WARN,
  info: DiagLogLevel.INFO,
  debug: DiagLogLevel.DEBUG,
  verbose: DiagLogLevel.VERBOSE,
  all: DiagLogLevel.ALL,
};

/**
 * The SDK's own diagnostics (export failures, bad configuration) as JSON log lines of the component
 * `opentelemetry`, at `OTEL_LOG_LEVEL` (default warn): the SDK would otherwise print to the console.
 */
export function installDiagLogger(env: Record<string, string | undefined>): void {
  const log = createLogger("opentelemetry");
  const extras = (args: unknown[]): Record<string, unknown> => (args.length ? { args } : {});
  const logger: DiagLogger = {
    error: (message, ...args) => log.error(extras(args), message),
    warn: (message, ...args) => log.warn(extras(args), message),
    info: (message, ...args) => log.info(extras(args), message),
    debug: (message, ...args) => log.debug(extras(args), message),
    verbose: (message, ...args) => log.trace(extras(args), message),
  };
  const level = LEVELS[(env.OTEL_LOG_LEVEL ?? "warn").toLowerCase()] ?? DiagLogLevel.WARN;
  diag.setLogger(logger, { logLevel: level, suppressOverrideMessage: true });
}
