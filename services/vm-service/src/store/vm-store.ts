import { type Actor, CommandRejected, Header, type Names, parse, vmEvents } from "@mikrom/contracts";
import { createEventStore, type EventStore, type OutgoingMessage, type Session } from "@mikrom/eventstore";
import { type Kysely, sql } from "kysely";
import type { Refusal } from "../domain/decide.ts";
import { type EndedOperation, endedOperations } from "../domain/operations.ts";
import type { Decision } from "../domain/outgoing.ts";
import { replay, type Step, type Vm, type VmEvent } from "../domain/vm.ts";
import { definitionOf, subjectOf, vmEventSubject } from "../messaging/subjects.ts";
import { recordOperations } from "../metrics.ts";
import { vmMigrations } from "./migrations.ts";
import { project, trackPlacement } from "./read-model.ts";
import type { Tables } from "./tables.ts";

/**
 * The VM unit of work on @mikrom/eventstore: in one transaction the inbound message is recorded in
 * the inbox, the VM's stream is locked and loaded, the domain decides, the events are appended (with
 * the outgoing commands in the outbox), the read model and the host usage follow, and the deadline of
 * the next step is written. Either all of it happens or none of it.
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

export type HandleResult =
  | { readonly kind: "duplicate" }
  | { readonly kind: "refused"; readonly refusal: Refusal }
  | {
      readonly kind: "decided";
      readonly decision: Decision;
      readonly vm: Vm;
      /** The user operations the new events end (for mikrom.vm.operation.duration once committed). */
      readonly operations: readonly EndedOperation[];
    };

export async function openVmStore(
  connectionString: string,
  names: Names,
  poolSize: number,
): Promise<VmStore> {
  return (await createEventStore({
    connectionString,
    events: STREAM_EVENTS,
    route: (e) => ({ subject: vmEventSubject(names, e.streamId, e.type) }),
    migrations: vmMigrations,
    pool: { max: poolSize, applicationName: "vm-service" },
  })) as unknown as VmStore;
}

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

function message(
  type: string,
  subject: string,
  data: unknown,
  id?: string,
  resend?: number,
): OutgoingMessage {
  const def = definitionOf(type);
  // The same schema validates on the way out as on receipt: a bug here is caught before the wire.
  return {
    ...(id !== undefined ? { id } : {}),
    ...(resend !== undefined ? { headers: { [Header.Resend]: String(resend) } } : {}),
    subject,
    type,
    schemaVersion: def.version,
    data: parse(def, data),
  };
}

async function decideIn(
  session: Session<VmEvent, Tables>,
  deps: StoreDeps,
  vmId: string,
  inbound: Inbound | null,
  commandType: string | null,
  run: (vm: Vm, tx: Tx) => Promise<Decision | Refusal>,
): Promise<HandleResult> {
  const tx = session.db;
  await lockVm(tx, vmId);
  const { version, events } = await session.readStream(vmId);
  const vm = replay(events);
  const outcome = await run(vm, tx);
  const metadata = {
    ...(inbound?.correlationId ? { correlationId: inbound.correlationId } : {}),
    ...(inbound?.actor
      ? { actor: { userId: String(inbound.actor.userId), userName: inbound.actor.userName } }
      : {}),
  };

  if ("refused" in outcome) {
    await session.send([
      message("CommandRejected", vmEventSubject(deps.names, vmId, "CommandRejected"), {
        entityId: vmId,
        command: commandType ?? "unknown",
        code: outcome.code,
        reason: outcome.reason,
      }),
    ]);
    return { kind: "refused", refusal: outcome };
  }

  const commands = outcome.commands.map((out) =>
    message(out.command.type, subjectOf(deps.names, out), out.command.data, out.messageId, out.resend),
  );
  let state = vm;
  let operations: readonly EndedOperation[] = [];
  if (outcome.events.length > 0) {
    const appended = await session.append(vmId, outcome.events, {
      expectedVersion: version,
      metadata,
      messages: commands,
    });
    for (const event of appended.events) {
      const after = replay([event], state);
      await project(tx, event, event.recordedAt);
      await trackPlacement(tx, state, after);
      state = after;
    }
    operations = endedOperations(events, appended.events);
  } else {
    await session.send(commands);
  }

  if (outcome.deadline === null) {
    await tx.deleteFrom("deadlines").where("vm_id", "=", vmId).execute();
  } else if (outcome.deadline !== undefined) {
    const timeoutMs = deps.deadlines[outcome.deadline];
    // Due by the database's clock, which the sweeper reads too; the command is sent again first.
    // Whole milliseconds, as a JavaScript Date holds it: the sweeper finds a row again by its due_at.
    const due = sql<Date>`date_trunc('milliseconds', now() + make_interval(secs => ${timeoutMs / 1000}))`;
    const resend = sql<Date>`now() + make_interval(secs => ${deps.resendAfterMs / 1000})`;
    // Only a step's own command carries a message id the state derives (see outstanding()).
    const commandId = outcome.commands.find((c) => c.messageId !== undefined)?.messageId ?? null;
    await tx
      .insertInto("deadlines")
      .values({
        vm_id: vmId,
        step: outcome.deadline,
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
  return { kind: "decided", decision: outcome, vm: state, operations };
}

export async function handleVm(
  deps: StoreDeps,
  vmId: string,
  inbound: Inbound | null,
  commandType: string | null,
  run: (vm: Vm, tx: Tx) => Promise<Decision | Refusal>,
): Promise<HandleResult> {
  const started = performance.now();
  let result: HandleResult;
  if (inbound) {
    const once = await deps.store.handleOnce(inbound.consumer, inbound.messageId, (session) =>
      decideIn(session, deps, vmId, inbound, commandType, run),
    );
    result = once.duplicate ? { kind: "duplicate" } : once.result;
  } else {
    result = await deps.store.transaction((session) => decideIn(session, deps, vmId, null, commandType, run));
  }
  deps.onDecision?.(performance.now() - started);
  // Only now, committed: a transaction retried after a conflict decides (and would count) again.
  if (result.kind === "decided") recordOperations(result.operations);
  return result;
}

/** Every event of one VM as recorded (for its history). */
export async function vmEventsOf(store: VmStore, vmId: string): ReturnType<VmStore["readStream"]> {
  return store.readStream(vmId);
}
