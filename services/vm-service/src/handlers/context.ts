import type { Names } from "@mikrom/contracts";
import type { Kysely } from "kysely";
import type { Config } from "../config.ts";
import type { Tables } from "../store/tables.ts";
import type { StoreDeps } from "../store/vm-store.ts";

/** What every handler gets: the store, its read tables, subject names and configuration. */
export interface HandlerDeps extends StoreDeps {
  /** The read model and host registry (the store's pool). */
  readonly db: Kysely<Tables>;
  readonly names: Names;
  readonly config: Config;
  /** The clock, so tests and the benchmark can play time. */
  readonly now: () => number;
  /** When this process started listening (by `now`): hosts are not judged before a whole heartbeat timeout. */
  readonly startedAtMs: number;
  /** Writes the heartbeats heard and not written yet: hosts are judged only after it. */
  readonly writeHeartbeats?: () => Promise<void>;
  /** Whether commands to a service (a subject filter) wait in the commands work queue, not yet taken. */
  readonly commandsWaiting?: (filter: string) => Promise<boolean>;
}

/** One received message as the handlers need it (from a @mikrom/bus envelope). */
export interface Delivery<M> {
  readonly message: M;
  readonly messageId: string;
  readonly correlationId: string | null;
  /** The id of the message this one answers (`Mikrom-Causation-Id`), when it says. */
  readonly causationId?: string | null;
}
