/**
 * The pure half of a service: a decider turns a command and the current state into events, or a
 * refusal; evolve folds events into state. Nothing here does I/O, so a domain module imports it as
 * `@mikrom/eventstore/decider` without pulling in pg or NATS.
 */

/** An event as the domain sees it: its type tag and its data (the shape `MessageOf` gives in @mikrom/contracts). */
export interface DomainEvent {
  readonly type: string;
  readonly data: unknown;
}

/**
 * A command the domain declines, with a reason a person can read. It is a value, not an error: the
 * command was understood and the state does not allow it (the gateway answers 409).
 */
export interface Refusal {
  readonly kind: "refusal";
  readonly reason: string;
  /** A stable, machine-readable name for the refusal when callers need to branch on it. */
  readonly code?: string;
}

export type Decision<E extends DomainEvent> = readonly E[] | Refusal;

export function refuse(reason: string, code?: string): Refusal {
  return Object.freeze(code === undefined ? { kind: "refusal", reason } : { kind: "refusal", reason, code });
}

export function isRefusal(value: unknown): value is Refusal {
  return (
    typeof value === "object" &&
    value !== null &&
    !Array.isArray(value) &&
    (value as { kind?: unknown }).kind === "refusal"
  );
}

/** How the events of one kind of stream fold into state. */
export interface Evolver<S, E extends DomainEvent> {
  readonly initialState: S;
  evolve(state: S, event: E): S;
}

export interface Decider<C, S, E extends DomainEvent> extends Evolver<S, E> {
  decide(command: C, state: S): Decision<E>;
}

/** One stream to load and decide on: its id and how its events fold (a Decider spread with an id fits). */
export interface Stream<S, E extends DomainEvent> extends Evolver<S, E> {
  readonly id: string;
}

export function fold<S, E extends DomainEvent>(evolver: Evolver<S, E>, events: Iterable<E>, from?: S): S {
  let state = from ?? evolver.initialState;
  for (const event of events) state = evolver.evolve(state, event);
  return state;
}
