import { command, event, type Names, Registry } from "@mikrom/contracts";
import { setLogDestination } from "@mikrom/telemetry";
import type { JetStreamManager, StoredMsg } from "@nats-io/jetstream";
import { z } from "zod";

/** Test messages: a command to do some work, and an event with a required field. */
export const DoWork = command(
  "DoWork",
  1,
  z.object({ n: z.int().nonnegative(), note: z.string().optional() }),
);
export const WorkDone = event("WorkDone", 1, z.object({ n: z.int(), by: z.string().min(1) }));
export const registry = new Registry([DoWork, WorkDone]);

/** Polls `check` until it returns a value other than undefined/false, or fails with `what` at the deadline. */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Every message a stream holds, oldest first. */
export async function storedMessages(jsm: JetStreamManager, stream: string): Promise<StoredMsg[]> {
  const { state } = await jsm.streams.info(stream);
  const messages: StoredMsg[] = [];
  for (let seq = state.first_seq; seq <= state.last_seq && state.messages > 0; seq++) {
    const msg = await jsm.streams.getMessage(stream, { seq }).catch(() => null);
    if (msg) messages.push(msg);
  }
  return messages;
}

export function deadLetters(jsm: JetStreamManager, names: Names): Promise<StoredMsg[]> {
  return storedMessages(jsm, names.streams.deadLetters);
}

/** A promise and the function that resolves it: a gate a test opens when it is ready. */
export function gate(): { opened: Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

/** Sends this process's log lines to an array (kept out of the test output), parsed. */
export function captureLogs(): Array<Record<string, unknown>> {
  const lines: Array<Record<string, unknown>> = [];
  setLogDestination({ write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) });
  return lines;
}
