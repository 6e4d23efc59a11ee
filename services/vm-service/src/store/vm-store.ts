import { type Actor, CommandRejected, Header, type Names, parse, vmEvents } from "@mikrom/contracts";
import {
  createEventStore,
  type EventStore,
  type HandleResult,
  type OutgoingMessage,
  type Refusal,
  type Session,
  type Stream,
} from "@mikrom/eventstore";
import { type Kysely, sql } from "kysely";
import { type EndedOperation, endedOperations } from "../domain/operations.ts";
import type { Decision, Outgoing } from "../domain/outgoing.ts";
import { evolve, initialVm, type Step, type Vm, type VmEvent } from "../domain/vm.ts";
import { definitionOf, subjectOf, vmEventSubject } from "../messaging/subjects.ts";
import { recordOperations } from "../metrics.ts";
import { vmMigrations } from "./migrations.ts";
import { project, trackPlacement } from "./read-model.ts";
import type { Tables } from "./tables.ts";

/**
 * The VM unit of work on @mikrom/eventstore: in one transaction the inbound message is recorded in
 * the inbox, the VM is locked, what the decision needs is read, `Session.handle` loads the VM, runs
 * the pure decision and appends its events with its commands in the outbox (or answers a refusal),
 * and then the read model, the host usage and the next step's deadline follow. All of it or none.
 */

export type Tx = Kysely<Tables>;
/** Events of the VM stream (CommandRejected is an answer, not part of any VM's history). */
const STREAM_EVENTS = vmEvents.filter((d) => d.type !== CommandRejected.type);
export type VmStore = EventStore<VmEvent, Tables>;

export interface Inbound {
  /** The durable consumer (or "deadlines") that handles the message; the inbox key is (consumer, id). */
  readonly consumer: string;
  readonly messageId: string;
  readonly correlationId: string | null;
  readonly actor: Actor | null;
}

export interface StoreDeps {
  readonly store: VmStore;
  readonly names: Names;
  readonly deadlines: Readonly<Record<Step, number>>;
  /** A step's command is sent again when its answer is this late. */
  readonly resendAfterMs: number;
  /** Told how long each decision took, from load to commit (the benchmark's figures). */
  readonly onDecision?: (ms: number) => void;
}

/** One input for one VM: what to read first (I/O, under the VM's lock), then the pure decision. */
export interface VmInput<C> {
  readonly vmId: string;
  /** The message being handled; null for the service's own inputs (deadlines, host changes). */
  readonly inbound: Inbound | null;
  /** The user's command decided, named in a refusal's CommandRejected; absent for answers. */
  readonly command?: string;
  readonly context: (tx: Tx) => Promise<C>;
  readonly decide: (vm: Vm, context: C) => Decision | Refusal;
}

export type VmResult = { readonly outcome: "duplicate" } | HandleResult<Vm, VmEvent, Decision>;

export async function openVmStore(
  connectionString: string,
  names: Names,
  poolSize: number,
): Promise<VmStore> {
  return (await createEventStore({
    connectionString,
    events: STREAM_EVENTS,
    route: (e) => ({ subject: vmEventSubject(names, e.streamId, e.type) }),
    refusals: (vmId) => ({ subject: vmEventSubject(names, vmId, "CommandRejected"), entityId: vmId }),
    migrations: vmMigrations,
    pool: { max: poolSize, applicationName: "vm-service" },
  })) as unknown as VmStore;
}

/** A VM's stream: its id is the VM's. */
export const vmStream = (vmId: string): Stream<Vm, VmEvent> => ({
  id: vmId,
  initialState: initialVm,
  evolve,
});

/** Serializes everything that touches one VM (two stops at once: the second sees `stopping`). */
async function lockVm(tx: Tx, vmId: string): Promise<void> {
  await sql`SELECT pg_advisory_xact_lock(hashtext(${`vm:${vmId}`}))`.execute(tx);
}

/** Serializes placements so that two VMs never take the same last slot of a host. */
export async function lockScheduling(tx: Tx): Promise<void> {
  await sql`SELECT pg_advisory_xact_lock(hashtext('vm-scheduling'))`.execute(tx);
}

/** Serializes creates of one user so that the per-user limit holds under concurrency. */
export async function lockUser(tx: Tx, userId: number): Promise<void> {
  await sql`SELECT pg_advisory_xact_lock(hashtext(${`user:${userId}`}))`.execute(tx);
}

/** A command this service sends, as an outbox message; its schema validates it before the wire. */
function message(names: Names, out: Outgoing): OutgoingMessage {
  const def = definitionOf(out.command.type);
  return {
    ...(out.messageId !== undefined ? { id: out.messageId } : {}),
    ...(out.resend !== undefined ? { headers: { [Header.Resend]: String(out.resend) } } : {}),
    subject: subjectOf(names, out),
    type: out.command.type,
    schemaVersion: def.version,
    data: parse(def, out.command.data),
  };
}

async function decideIn<C>(
  session: Session<VmEvent, Tables>,
  deps: StoreDeps,
  input: VmInput<C>,
): Promise<{ result: HandleResult<Vm, VmEvent, Decision>; operations: readonly EndedOperation[] }> {
  const tx = session.db;
  const { vmId, inbound } = input;
  await lockVm(tx, vmId);
  const context = await input.context(tx);
  const result = await session.handle(vmStream(vmId), (vm) => input.decide(vm, context), {
    ...(input.command !== undefined && { command: input.command }),
    metadata: {
      ...(inbound?.correlationId ? { correlationId: inbound.correlationId } : {}),
      ...(inbound?.actor
        ? { actor: { userId: String(inbound.actor.userId), userName: inbound.actor.userName } }
        : {}),
    },
    messages: (decision) => decision.commands.map((out) => message(deps.names, out)),
  });
  if (result.outcome === "refused") return { result, operations: [] };

  let state = result.before;
  for (const event of result.events) {
    const after = evolve(state, event);
    await project(tx, event, event.recordedAt);
    await trackPlacement(tx, state, after);
    state = after;
  }
  await keepDeadline(tx, deps, vmId, result.decided);
  return { result, operations: endedOperations(result.history, result.events) };
}

/** The VM's deadline after a decision: a step's (replacing any other), none, or unchanged. */
async function keepDeadline(tx: Tx, deps: StoreDeps, vmId: string, decision: Decision): Promise<void> {
  if (decision.deadline === undefined) return;
  if (decision.deadline === null) {
    await tx.deleteFrom("deadlines").where("vm_id", "=", vmId).execute();
    return;
  }
  const timeoutMs = deps.deadlines[decision.deadline];
  // Due by the database's clock, which the sweeper reads too; the command is sent again first.
  // Whole milliseconds, as a JavaScript Date holds it: the sweeper finds a row again by its due_at.
  const due = sql<Date>`date_trunc('milliseconds', now() + make_interval(secs => ${timeoutMs / 1000}))`;
  const resend = sql<Date>`now() + make_interval(secs => ${deps.resendAfterMs / 1000})`;
  // Only a step's own command carries a message id the state derives (see outstanding()).
  const commandId = decision.commands.find((c) => c.messageId !== undefined)?.messageId ?? null;
  await tx
    .insertInto("deadlines")
    .values({
      vm_id: vmId,
      step: decision.deadline,
      timeout_ms: timeoutMs,
      due_at: due,
      resend_at: resend,
      resends: 0,
      command_id: commandId,
    })
    .onConflict((oc) =>
      oc.column("vm_id").doUpdateSet((eb) => ({
        step: eb.ref("excluded.step"),
        timeout_ms: eb.ref("excluded.timeout_ms"),
        due_at: eb.ref("excluded.due_at"),
        resend_at: eb.ref("excluded.resend_at"),
        resends: 0,
        // A deadline armed again for the same step (its host unreachable) keeps its command.
        command_id: sql<string | null>`CASE WHEN deadlines.step = excluded.step
          THEN coalesce(excluded.command_id, deadlines.command_id) ELSE excluded.command_id END`,
      })),
    )
    .execute();
}

/** Handles one input for one VM in one transaction, once per inbound message. */
export async function handleVm<C>(deps: StoreDeps, input: VmInput<C>): Promise<VmResult> {
  const started = performance.now();
  const { inbound } = input;
  const handled = inbound
    ? await deps.store.handleOnce(inbound.consumer, inbound.messageId, (s) => decideIn(s, deps, input))
    : { duplicate: false as const, result: await deps.store.transaction((s) => decideIn(s, deps, input)) };
  deps.onDecision?.(performance.now() - started);
  if (handled.duplicate) return { outcome: "duplicate" };
  // Only now, committed: a transaction retried after a conflict decides (and would count) again.
  recordOperations(handled.result.operations);
  return handled.result.result;
}

/** Every event of one VM as recorded (for its history). */
export async function vmEventsOf(store: VmStore, vmId: string): ReturnType<VmStore["readStream"]> {
  return store.readStream(vmId);
}
