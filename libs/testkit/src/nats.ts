import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { isStale, uniqueName } from "./names.ts";

export interface TestNats {
  readonly url: string;
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  /** Namespace for every subject and stream of this test: `<namespace>.cmd.…`, `<NAMESPACE>_EVENTS`. */
  readonly namespace: string;
  /** Deletes this test's streams and closes the connection. */
  cleanup(): Promise<void>;
}

export function connectNats(url: string, name: string): Promise<NatsConnection> {
  return connect({ servers: url, name, noAsyncTraces: true, timeout: 3000 });
}

async function deleteStreams(jsm: JetStreamManager, matches: (name: string) => boolean): Promise<string[]> {
  const deleted: string[] = [];
  for await (const name of jsm.streams.names()) {
    if (!matches(name)) continue;
    await jsm.streams.delete(name).catch(() => false);
    deleted.push(name);
  }
  return deleted;
}

export async function createTestNats(url: string): Promise<TestNats> {
  const namespace = uniqueName();
  const streamPrefix = namespace.toUpperCase();
  const nc = await connectNats(url, `test ${namespace}`);
  const jsm = await jetstreamManager(nc);
  return {
    url,
    nc,
    js: jetstream(nc),
    jsm,
    namespace,
    async cleanup() {
      try {
        await deleteStreams(jsm, (n) => n.startsWith(streamPrefix) || n.startsWith(`KV_${streamPrefix}`));
      } finally {
        await nc.close();
      }
    },
  };
}

/** Deletes streams that a crashed run left behind (older than the stale age). */
export async function sweepStaleStreams(url: string): Promise<string[]> {
  const nc = await connectNats(url, "test sweeper");
  try {
    const jsm = await jetstreamManager(nc);
    return await deleteStreams(jsm, (n) => isStale(n.replace(/^KV_/, "").toLowerCase()));
  } finally {
    await nc.close();
  }
}
