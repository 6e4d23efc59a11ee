export { type BatchedOptions, batched } from "./batched.ts";
export { type EventDef, type EventsOf, type Upcaster, upcaster } from "./catalog.ts";
export {
  type Decided,
  type Decider,
  type Decision,
  type DomainEvent,
  type Evolver,
  eventsOf,
  fold,
  isRefusal,
  type Refusal,
  type RefusalCode,
  refuse,
  type Stream,
} from "./decider.ts";
export { ConcurrencyConflict, UnreadableEvent } from "./errors.ts";
export {
  type Actor,
  type Checkpoint,
  checkpointOf,
  type EventMetadata,
  type EventPosition,
  type MetadataInput,
  type NewEvent,
  type RecordedEvent,
  START,
} from "./event.ts";
export {
  EVENT_STORE_MIGRATION_TABLE,
  eventStoreMigrations,
  type MigrateOptions,
  MigrationFailed,
  migrate,
  SERVICE_MIGRATION_TABLE,
} from "./migrations.ts";
export type { OutboxMessage, OutgoingMessage, PendingEvent, Publish, Route, Router } from "./outbox.ts";
export { createPool, type PoolOptions } from "./pool.ts";
export type { Projection } from "./projections.ts";
export { createProjector, type Projector, type ProjectorOptions } from "./projector.ts";
export { createRelay, type Relay, type RelayOptions, type RelayStats } from "./relay.ts";
export type { EventStoreTables } from "./schema.ts";
export type {
  AppendOptions,
  AppendResult,
  HandleOptions,
  HandleResult,
  RefusalRouter,
  Session,
  StreamEvents,
} from "./session.ts";
export {
  createEventStore,
  type EventStore,
  type EventStoreOptions,
  type Once,
  type ReadAllResult,
  type TransactionOptions,
} from "./store.ts";
