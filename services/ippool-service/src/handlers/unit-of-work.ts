import type { IppoolEvent } from "../store/projection.ts";
import type { Db } from "../store/tables.ts";

/**
 * What a command needs from the event store's transaction (`Session` of @mikrom/eventstore fits it):
 * the transaction for this service's tables, the stream to read, the append (which projects the
 * events into the tables in the same transaction), and the outbox for messages that are not events.
 */
export interface UnitOfWork {
  readonly db: Db;
  readStream(streamId: string): Promise<{ version: number; events: readonly IppoolEvent[] }>;
  append(
    streamId: string,
    events: readonly IppoolEvent[],
    options: { expectedVersion: number },
  ): Promise<unknown>;
  send(
    messages: ReadonlyArray<{
      subject: string;
      type: string;
      schemaVersion: number;
      data: unknown;
      id?: string;
    }>,
  ): Promise<void>;
}

/** A VM's allocation history is one stream; a pool's definition another. */
export const vmStreamId = (vmId: string): string => `ippool-vm-${vmId}`;
export const poolStreamId = (poolId: string): string => `ippool-${poolId}`;
