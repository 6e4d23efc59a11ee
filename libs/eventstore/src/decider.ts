/**
 * The pure half of a service: a decider turns a command and the current state into events, or a
 * refusal; evolve folds events into state. Nothing here does I/O, so a domain module imports it as
 * `@mikrom/eventstore/decider` without pulling in pg or NATS.
 */

import type { CommandRejected, DataOf } from "@mikrom/contracts";

/** An event as the domain sees it: its type tag and its data (the shape `MessageOf` gives in @mikrom/contracts). */
export interface DomainEvent {
  readonly type: string;
  readonly data: unknown;
}

/** Why a command was declined, as its CommandRejected answer names it (the gateway maps it to an HTTP status). */
export type RefusalCode = DataOf<typeof CommandRejected>["code"];

/**
 * A command the domain declines, with a reason a person can read. It is a value, not an error: the
 * command was understood and the state does not allow it. Every service refuses with this one type,
 * and `Session.handle` answers it as CommandRejected the same way everywhere.
 */
export interface Refusal {
  readonly kind: "refusal";
  readonly code: RefusalCode;
  readonly reason: string;
}

/**
 * What a decider may decide: the events alone, or the events with what else the same decision asks
 * for (a service's commands to others, a deadline), which the caller carries out in the transaction.
 */
export type Decided<E extends DomainEvent> = readonly E[] | { readonly events: readonly E[] };

export type Decision<E extends DomainEvent, D extends Decided<E> = readonly E[]> = D | Refusal;

export function refuse(code: RefusalCode, reason: string): Refusal {
  return Object.freeze({ kind: "refusal", code, reason });
}

export function isRefusal(value: unknown): value is Refusal {
  return (
    typeof value === "object" &&
    value !== null &&
    !Array.isArray(value) &&
    (value as { kind?: unknown }).kind === "refusal"
  );
}

/** The events a decision appends. */
export function eventsOf<E extends DomainEvent>(decided: Decided<E>): readonly E[] {
  return "events" in decided ? decided.events : (decided as readonly E[]);
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
