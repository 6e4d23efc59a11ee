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
 * The gateway's only way to the rest of the system. Commands go to JetStream (Commands records and
 * re-sends them, and waits for their outcome among the events); queries are NATS request-reply; the
 * event feed reads the events stream.
 * Routes know this port, not NATS, so they are tested against a real bus or a stand-in alike.
 */
export interface Backend {
  /**
   * Publishes a command to JetStream, `Nats-Msg-Id` = its id (JetStream drops a repeat inside its
   * duplicate window, the owning service's inbox any other); BackendUnavailable when NATS cannot take it.
   */
  publish(command: OutgoingCommand): Promise<void>;
  /**
   * Calls `listener` with every event of the command contexts (`vm`, `ippool`) that names its cause:
   * the outcome of a command is the first event whose causation id is the command's id.
   */
  onEvent(listener: (event: ObservedEvent) => void): () => void;
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

export interface OutgoingCommand {
  /** Owning service: the subject is `<ns>.cmd.<service>.<verb>`. */
  readonly service: string;
  readonly verb: string;
  readonly def: MessageDef<"command">;
  readonly data: unknown;
  readonly commandId: string;
  /** The request that started the work (its id), carried as correlation and causation id. */
  readonly correlationId: string;
  /** Bound on the publish, retries included. */
  readonly timeoutMs: number;
  /** Set (its count) when the command is sent again: it must pass JetStream's duplicate window. */
  readonly resend?: number;
}

/** An event seen on a command context's subjects, with the message that caused it. */
export interface ObservedEvent {
  readonly causationId: string;
  readonly type: string;
  readonly data: unknown;
  /** When the owning service recorded it (`Mikrom-Recorded-At`), when the message says. */
  readonly recordedAt?: string;
}

export type CommandOutcome =
  | {
      readonly status: "accepted";
      readonly eventType: string;
      readonly data: unknown;
      /** The outcome event's recorded_at; unknown for an outcome read back from the ledger. */
      readonly recordedAt?: string;
    }
  | {
      readonly status: "rejected";
      readonly code: DataOf<typeof CommandRejected>["code"];
      readonly reason: string;
    }
  /** The owning service did not answer within the bound; the command is recorded and will be carried out. */
  | { readonly status: "pending" };

export interface FeedEvent {
  /** Stream sequence: the SSE event id, so `Last-Event-ID` resumes exactly after it. */
  readonly seq: number;
  readonly subject: string;
  readonly type: string;
  readonly entityId: string;
  readonly data: Record<string, unknown>;
  readonly time: string;
  /** `Mikrom-Message-Id`: the same on every copy of an event sent again. */
  readonly messageId?: string;
}

export interface EventFeed extends AsyncIterable<FeedEvent> {
  stop(): Promise<void>;
}
