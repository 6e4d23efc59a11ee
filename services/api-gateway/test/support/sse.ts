export interface SseEvent {
  id: string | undefined;
  event: string | undefined;
  data: string;
  /** When the client parsed it (epoch ms): what an event's delivery latency is measured to. */
  receivedAt: number;
}

export interface SseClient {
  readonly status: number;
  readonly contentType: string | null;
  /** The next event, or a failure when the deadline passes first. */
  next(deadlineMs?: number): Promise<SseEvent>;
  /** Waits until a comment line (`: …`) containing `text` arrives. */
  comment(text: string, deadlineMs?: number): Promise<void>;
  close(): void;
}

/** A minimal EventSource over fetch, so the test can send headers and read comments. */
export async function openSse(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
  const abort = new AbortController();
  const res = await fetch(url, {
    headers: { Accept: "text/event-stream", ...headers },
    signal: abort.signal,
  });
  const events: SseEvent[] = [];
  const comments: string[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  if (res.ok && res.body) {
    void (async () => {
      const decoder = new TextDecoder();
      let buffer = "";
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          buffer += decoder.decode(chunk, { stream: true });
          let cut = buffer.indexOf("\n\n");
          while (cut >= 0) {
            const block = buffer.slice(0, cut);
            buffer = buffer.slice(cut + 2);
            const event: SseEvent = { id: undefined, event: undefined, data: "", receivedAt: Date.now() };
            let isEvent = false;
            for (const line of block.split("\n")) {
              if (line.startsWith(":")) {
                comments.push(line.slice(1).trim());
              } else if (line.startsWith("id:")) {
                event.id = line.slice(3).trim();
                isEvent = true;
              } else if (line.startsWith("event:")) {
                event.event = line.slice(6).trim();
              } else if (line.startsWith("data:")) {
                event.data += line.slice(5).trim();
                isEvent = true;
              }
            }
            if (isEvent) events.push(event);
            cut = buffer.indexOf("\n\n");
          }
          wake?.();
        }
      } catch {
        // aborted
      } finally {
        ended = true;
        wake?.();
      }
    })();
  }
  async function until<T>(take: () => T | undefined, what: string, deadlineMs: number): Promise<T> {
    const deadline = Date.now() + deadlineMs;
    for (;;) {
      const value = take();
      if (value !== undefined) return value;
      if (ended) throw new Error(`stream ended before ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${what} within ${deadlineMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }
  return {
    status: res.status,
    contentType: res.headers.get("content-type"),
    next: (deadlineMs = 5_000) => until(() => events.shift(), "event", deadlineMs),
    comment: (text, deadlineMs = 5_000) =>
      until(
        () => (comments.some((c) => c.includes(text)) ? true : undefined),
        `comment "${text}"`,
        deadlineMs,
      ).then(() => {}),
    close: () => abort.abort(),
  };
}
