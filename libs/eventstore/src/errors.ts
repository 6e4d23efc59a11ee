/**
 * Another writer appended to the stream since it was read (or created it first). Reload, decide
 * again; `store.handle` and `store.transaction` do so a bounded number of times before throwing this.
 */
export class ConcurrencyConflict extends Error {
  override readonly name = "ConcurrencyConflict";
  readonly streamId: string;
  readonly expectedVersion: number;
  /** The version found, when the store could see it (a racing writer that has not committed yet is invisible). */
  readonly actualVersion: number | undefined;

  constructor(streamId: string, expectedVersion: number, actualVersion?: number) {
    const found =
      actualVersion === undefined ? "another writer got there first" : `it is at ${actualVersion}`;
    super(
      expectedVersion === 0
        ? `stream ${streamId} was expected not to exist, but ${actualVersion === undefined ? "another writer created it" : found}`
        : `stream ${streamId} was expected at version ${expectedVersion}, but ${found}`,
    );
    this.streamId = streamId;
    this.expectedVersion = expectedVersion;
    this.actualVersion = actualVersion;
  }
}

/** A stored event this store cannot turn into a current domain event: unknown type, or no upcaster for its version. */
export class UnreadableEvent extends Error {
  override readonly name = "UnreadableEvent";
  readonly eventType: string;
  readonly schemaVersion: number;

  constructor(eventType: string, schemaVersion: number, why: string) {
    super(`cannot read ${eventType} v${schemaVersion}: ${why}`);
    this.eventType = eventType;
    this.schemaVersion = schemaVersion;
  }
}
