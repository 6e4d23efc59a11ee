import { context } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";

let installed = false;

/**
 * Installs the AsyncLocalStorage context manager as soon as the library is imported, so that active spans
 * and extracted message contexts follow async code even in a process (or a test) that never calls
 * startTelemetry: trace ids then still flow through NATS headers and into log lines. startTelemetry keeps
 * this manager instead of registering a second one.
 */
export function ensureContextManager(): void {
  if (installed) return;
  installed = true;
  const manager = new AsyncLocalStorageContextManager();
  manager.enable();
  if (!context.setGlobalContextManager(manager)) manager.disable();
}
