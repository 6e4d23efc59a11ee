import { open, stat } from "node:fs/promises";
import { setTimeout as delay } from "node:timers/promises";

/**
 * The VM's console is a file the hypervisor appends to (it must outlive the agent). These helpers
 * read its end, keep it bounded, and follow it for the guest's readiness line.
 */

/** The last `maxBytes` of the file as text; "" when it does not exist. */
export async function readTail(path: string, maxBytes: number): Promise<string> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(path, "r");
    const { size } = await handle.stat();
    const length = Math.min(size, Math.max(0, maxBytes));
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buffer, 0, length, size - length);
    return buffer.subarray(0, bytesRead).toString("utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return "";
    throw error;
  } finally {
    await handle?.close();
  }
}

/**
 * Keeps the file under `maxBytes` by cutting it to its last half when it grows past. The writer
 * must append (O_APPEND: qemu's `append=on`, a shell's `>>`), so its next write lands after the
 * kept tail. Bytes written between the read and the truncate are lost: the console is a
 * diagnostic, not a record.
 */
export async function trimConsole(path: string, maxBytes: number): Promise<boolean> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch {
    return false;
  }
  if (size <= maxBytes) return false;
  const keep = Math.floor(maxBytes / 2);
  const handle = await open(path, "r+");
  try {
    const buffer = Buffer.alloc(keep);
    const { bytesRead } = await handle.read(buffer, 0, keep, size - keep);
    const cut = buffer.indexOf(0x0a);
    // Start the kept part at a line boundary so the first line is whole.
    const kept = buffer.subarray(cut >= 0 && cut < bytesRead - 1 ? cut + 1 : 0, bytesRead);
    await handle.truncate(0);
    await handle.write(kept, 0, kept.length, 0);
  } finally {
    await handle.close();
  }
  return true;
}

/** Trims the consoles of attached VMs every few seconds; the timer never keeps the process alive. */
export class ConsoleKeeper {
  readonly #paths = new Set<string>();
  readonly #maxBytes: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(maxBytes: number, intervalMs = 5000) {
    this.#maxBytes = maxBytes;
    this.#timer = setInterval(() => void this.trimAll(), intervalMs);
    this.#timer.unref();
  }

  get maxBytes(): number {
    return this.#maxBytes;
  }

  watch(path: string): void {
    this.#paths.add(path);
  }

  unwatch(path: string): void {
    this.#paths.delete(path);
  }

  async trimAll(): Promise<void> {
    for (const path of this.#paths) await trimConsole(path, this.#maxBytes).catch(() => false);
  }

  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#paths.clear();
  }
}

export type FollowOutcome<T> =
  | { kind: "match"; value: T }
  | { kind: "exited" }
  | { kind: "timeout" }
  | { kind: "aborted"; reason: unknown };

export interface FollowOptions<T> {
  /** Returns a value for the line that ends the wait, undefined to keep reading. */
  match: (line: string) => T | undefined;
  timeoutMs: number;
  /** Checked between reads: false ends the wait with `exited`. */
  alive: () => Promise<boolean>;
  signal?: AbortSignal;
  pollMs?: number;
}

/** Reads the file as it grows, line by line, until a line matches, the writer dies, or the deadline. */
export async function followLines<T>(path: string, options: FollowOptions<T>): Promise<FollowOutcome<T>> {
  const deadline = performance.now() + options.timeoutMs;
  const pollMs = options.pollMs ?? 50;
  let offset = 0;
  let partial = "";
  for (;;) {
    if (options.signal?.aborted) return { kind: "aborted", reason: options.signal.reason };
    const chunk = await readFrom(path, offset);
    if (chunk.length > 0) {
      offset += chunk.length;
      const lines = (partial + chunk.toString("utf8")).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) {
        const value = options.match(line.replace(/\r$/, ""));
        if (value !== undefined) return { kind: "match", value };
      }
      // A readiness line may arrive without its newline yet.
      const value = options.match(partial);
      if (value !== undefined) return { kind: "match", value };
      continue;
    }
    if (!(await options.alive())) {
      // The last words may have been written between the read and the check.
      const rest = (await readFrom(path, offset)).toString("utf8");
      for (const line of (partial + rest).split("\n")) {
        const value = options.match(line.replace(/\r$/, ""));
        if (value !== undefined) return { kind: "match", value };
      }
      return { kind: "exited" };
    }
    const left = deadline - performance.now();
    if (left <= 0) return { kind: "timeout" };
    await delay(Math.min(pollMs, left));
  }
}

async function readFrom(path: string, offset: number): Promise<Buffer> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(path, "r");
    const { size } = await handle.stat();
    if (size <= offset) return Buffer.alloc(0);
    const buffer = Buffer.alloc(Math.min(size - offset, 1 << 20));
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
    return buffer.subarray(0, bytesRead);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return Buffer.alloc(0);
    throw error;
  } finally {
    await handle?.close();
  }
}
