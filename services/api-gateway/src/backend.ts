import type {
  CommandRejected,
  DataOf,
  MessageDef,
  QueryDef,
  QueryReply,
  RequestOf,
  ResponseOf,
} from "@mikrom/contracts";

/**
 * The gateway's only way to the rest of the system. Commands go to JetStream and wait for the
 * owning service's answer; queries are NATS request-reply; the event feed reads the events stream.
 * Routes know this port, not NATS, so they are tested against a real bus or a stand-in alike.
 */
export interface Backend {
  /** Publishes the command and waits (bounded) for the first event it caused; BackendUnavailable when it cannot publish. */
  send(command: CommandRequest): Promise<CommandOutcome>;
  query<Q extends QueryDef>(
    service: string,
    def: Q,
    request: RequestOf<Q>,
    timeoutMs?: number,
  ): Promise<QueryReply<ResponseOf<Q>>>;
  /** Events of one context (`vm`) from the events stream, after a stream sequence or from now; BackendUnavailable when unreachable. */
  events(options: { context: string; afterSequence?: number }): Promise<EventFeed>;
  /** NATS connected and the streams reachable. */
  ready(): Promise<boolean>;
}

/** NATS or a stream is out of reach: the request may be retried (503). */
export class BackendUnavailable extends Error {
  override readonly name = "BackendUnavailable";
}

export interface CommandRequest {
  /** Owning service: the subject is `<ns>.cmd.<service>.<verb>`. */
  readonly service: string;
  readonly verb: string;
  readonly def: MessageDef<"command">;
  readonly data: unknown;
  /** The entity the answer is about: the outcome is awaited on `<ns>.evt.<context>.<entityId>.>`. */
  readonly context: string;
  readonly entityId: string;
  /** The command's id: `Nats-Msg-Id`, and the causation id of its outcome event. */
  readonly commandId: string;
  readonly timeoutMs: number;
}

export type CommandOutcome =
  | { readonly status: "accepted"; readonly eventType: string; readonly data: unknown }
  | {
      readonly status: "rejected";
      readonly code: DataOf<typeof CommandRejected>["code"];
      readonly reason: string;
    }
  /** The owning service did not answer within the bound; the command is in the stream and will be handled. */
  | { readonly status: "pending" };

export interface FeedEvent {
  /** Stream sequence: the SSE event id, so `Last-Event-ID` resumes exactly after it. */
  readonly seq: number;
  readonly subject: string;
  readonly type: string;
  readonly entityId: string;
  readonly data: Record<string, unknown>;
  readonly time: string;
}

export interface EventFeed extends AsyncIterable<FeedEvent> {
  stop(): Promise<void>;
}
