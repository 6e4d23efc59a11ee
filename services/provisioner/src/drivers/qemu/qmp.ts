import { connect, type Socket } from "node:net";

/**
 * A QMP client for one command: connect to the VM's monitor socket, negotiate capabilities, run
 * the command, close. One connection per command keeps nothing open across an agent restart and
 * needs no re-attach; QEMU serves one monitor client at a time, so callers serialize per VM.
 */

export class QmpError extends Error {
  override readonly name = "QmpError";
  readonly errorClass: string;
  constructor(command: string, errorClass: string, desc: string) {
    super(`QMP ${command}: ${errorClass}: ${desc}`);
    this.errorClass = errorClass;
  }
}

export interface QmpOptions {
  timeoutMs?: number;
  /**
   * `quit` may close the socket before its reply arrives: with this set, a close after the
   * command was sent counts as success.
   */
  closeIsSuccess?: boolean;
}

type QmpMessage = { QMP?: unknown; return?: unknown; error?: { class: string; desc: string }; id?: string };

export async function qmpExecute(
  socketPath: string,
  command: string,
  args?: Record<string, unknown>,
  options: QmpOptions = {},
): Promise<unknown> {
  const timeoutMs = options.timeoutMs ?? 5000;
  const socket = connect(socketPath);
  const messages = lineReader(socket);
  const timer = setTimeout(
    () => socket.destroy(new Error(`QMP ${command}: no answer within ${timeoutMs} ms`)),
    timeoutMs,
  );
  let sent = false;
  try {
    await next(messages, (m) => m.QMP !== undefined, "greeting");
    socket.write(`${JSON.stringify({ execute: "qmp_capabilities", id: "caps" })}\n`);
    await reply(messages, "caps", "qmp_capabilities");
    socket.write(
      `${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id: "cmd" })}\n`,
    );
    sent = true;
    return await reply(messages, "cmd", command);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const closed = error instanceof ClosedError || code === "ECONNRESET" || code === "EPIPE";
    if (sent && options.closeIsSuccess && closed) return {};
    throw error;
  } finally {
    clearTimeout(timer);
    socket.destroy();
  }
}

class ClosedError extends Error {
  override readonly name = "QmpClosed";
}

async function reply(messages: AsyncIterator<QmpMessage>, id: string, command: string): Promise<unknown> {
  const message = await next(messages, (m) => m.id === id, command);
  if (message.error) throw new QmpError(command, message.error.class, message.error.desc);
  return message.return;
}

/** The next message that satisfies `wanted`; events (asynchronous messages) are skipped. */
async function next(
  messages: AsyncIterator<QmpMessage>,
  wanted: (m: QmpMessage) => boolean,
  what: string,
): Promise<QmpMessage> {
  for (;;) {
    const { value, done } = await messages.next();
    if (done) throw new ClosedError(`QMP socket closed while waiting for ${what}`);
    if (wanted(value)) return value;
  }
}

async function* lineReader(socket: Socket): AsyncGenerator<QmpMessage> {
  let buffered = "";
  for await (const chunk of socket) {
    buffered += (chunk as Buffer).toString("utf8");
    let newline = buffered.indexOf("\n");
    while (newline >= 0) {
      const line = buffered.slice(0, newline).trim();
      buffered = buffered.slice(newline + 1);
      if (line) yield JSON.parse(line) as QmpMessage;
      newline = buffered.indexOf("\n");
    }
  }
}
