import {
  CommandRejected,
  type DataOf,
  ippoolCommands,
  type MessageDef,
  parse,
  vmCommands,
} from "@mikrom/contracts";
import { createLogger, errorFields, getContext, injectCarrier, runInCarrier } from "@mikrom/telemetry";
import type { Kysely } from "kysely";
import type { Backend, CommandOutcome, ObservedEvent } from "../backend.ts";
import type { GatewayDb } from "../store/db.ts";
import {
  type CommandRecord,
  claimDue,
  createOf,
  forgetSettled,
  type NewCommand,
  recorder,
  type Settlement,
  settle,
  unsettledCreates,
} from "./ledger.ts";

const log = createLogger("mikrom.api-gateway.commands");

/** Every command the gateway sends, by type: a re-send is validated and typed as the first send was. */
const DEFS = new Map<string, MessageDef<"command">>(
  [...vmCommands, ...ippoolCommands].map((d) => [d.type, d]),
);

export interface CommandRequest {
  /** Owning service: the subject is `<ns>.cmd.<service>.<verb>`. */
  readonly service: string;
  readonly verb: string;
  readonly def: MessageDef<"command">;
  readonly data: unknown;
  /** The entity the answer is about (its events' subjects carry it). */
  readonly context: string;
  readonly entityId: string;
  /** `Nats-Msg-Id`, and the causation id of its outcome event. Derived from an Idempotency-Key when there is one. */
  readonly commandId: string;
  readonly userId: number;
}

export interface CommandsOptions {
  /** How long a request waits for the owning service's answer before answering 202. */
  readonly timeoutMs: number;
  /** How often due re-sends are looked for (default 1 s). */
  readonly resendEveryMs?: number;
}

/**
 * Commands with a promise behind their 202: each is recorded in the gateway's own database before
 * it is first sent, and sent again (same id: consumers drop duplicates) until its outcome event is
 * seen, however NATS, the owning service or this process fare meanwhile. The outcome is the first
 * event whose causation id is the command's id; one subscription per gateway sees them all.
 */
export class Commands {
  readonly #db: Kysely<GatewayDb>;
  readonly #backend: Backend;
  readonly #record: (command: NewCommand) => Promise<CommandRecord>;
  readonly #options: Required<CommandsOptions>;
  /** Requests waiting for their command's outcome. */
  readonly #waiting = new Map<string, (outcome: CommandOutcome) => void>();
  /** Commands sent again by this replica, settled when their outcome shows up. */
  readonly #resending = new Set<string>();
  #settling: Settlement[] = [];
  #flush: ReturnType<typeof setTimeout> | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #loop: Promise<void> = Promise.resolve();
  #unsubscribe: (() => void) | undefined;

  constructor(db: Kysely<GatewayDb>, backend: Backend, options: CommandsOptions) {
    this.#db = db;
    this.#backend = backend;
    this.#record = recorder(db);
    this.#options = { resendEveryMs: 1_000, ...options };
  }

  /** Starts watching outcomes and re-sending what has none yet. */
  start(): void {
    this.#unsubscribe = this.#backend.onEvent((event) => this.#observe(event));
    this.#timer = setInterval(() => {
      this.#loop = this.#loop.then(() => this.resendDue().then(() => undefined));
    }, this.#options.resendEveryMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#unsubscribe?.();
    await this.#loop;
    await this.#flushSettled();
  }

  /**
   * Records the command, sends it and waits (bounded) for its outcome. A command recorded before (a
   * retry of the same request) answers from its record when settled. Throws when the gateway's
   * database is away (nothing was promised); a send that fails is left to the re-sends.
   */
  async submit(request: CommandRequest): Promise<CommandOutcome> {
    const { commandId } = request;
    const outcome = new Promise<CommandOutcome>((resolve) => this.#waiting.set(commandId, resolve));
    try {
      const carrier: Record<string, string> = {};
      injectCarrier(carrier);
      const recorded = await this.#record({
        commandId,
        userId: request.userId,
        service: request.service,
        verb: request.verb,
        type: request.def.type,
        context: request.context,
        entityId: request.entityId,
        data: parse(request.def, request.data),
        carrier,
        correlationId: getContext().request_id ?? commandId,
      });
      if (recorded.settled_at !== null) return outcomeOf(recorded);
      try {
        await this.#send(recorded);
      } catch (error) {
        log.warn(
          { command_id: commandId, ...errorFields(error) },
          "command not sent yet; it will be re-sent",
        );
        return { status: "pending" };
      }
      const timeout = new Promise<CommandOutcome>((resolve) =>
        setTimeout(() => resolve({ status: "pending" }), this.#options.timeoutMs).unref(),
      );
      return await Promise.race([outcome, timeout]);
    } finally {
      this.#waiting.delete(commandId);
    }
  }

  /** One round of re-sends (the timer runs it; tests call it). Returns how many were sent again. */
  async resendDue(limit = 200): Promise<number> {
    let due: CommandRecord[];
    try {
      due = await claimDue(this.#db, limit);
    } catch (error) {
      log.warn(errorFields(error), "could not look for commands to send again");
      return 0;
    }
    let sent = 0;
    for (const command of due) {
      this.#resending.add(command.command_id);
      try {
        await runInCarrier(command.carrier, () => this.#send(command, command.attempts));
        sent++;
        if (command.attempts % 10 === 1)
          log.info(
            { command_id: command.command_id, type: command.type, attempts: command.attempts },
            "command sent again: its outcome has not been seen yet",
          );
      } catch (error) {
        log.warn({ command_id: command.command_id, ...errorFields(error) }, "re-sending a command failed");
      }
    }
    return sent;
  }

  /** Sends a recorded command; `resend` (a count) marks it sent again. */
  #send(command: CommandRecord, resend?: number): Promise<void> {
    const def = DEFS.get(command.type);
    if (!def) throw new Error(`no contract for command ${command.type}`);
    return this.#backend.publish({
      service: command.service,
      verb: command.verb,
      def,
      data: command.data,
      commandId: command.command_id,
      correlationId: command.correlation_id,
      timeoutMs: this.#options.timeoutMs,
      ...(resend !== undefined && { resend }),
    });
  }

  #observe(event: ObservedEvent): void {
    const id = event.causationId;
    const waiter = this.#waiting.get(id);
    if (!waiter && !this.#resending.has(id)) return;
    const outcome: CommandOutcome =
      event.type === CommandRejected.type
        ? {
            status: "rejected",
            code: (event.data as DataOf<typeof CommandRejected>).code,
            reason: String((event.data as DataOf<typeof CommandRejected>).reason ?? "refused"),
          }
        : {
            status: "accepted",
            eventType: event.type,
            data: event.data,
            ...(event.recordedAt && { recordedAt: event.recordedAt }),
          };
    waiter?.(outcome);
    this.#resending.delete(id);
    this.#settling.push({
      commandId: id,
      outcome: outcome.status === "rejected" ? "rejected" : "accepted",
      eventType: event.type,
      ...(outcome.status === "rejected" && { code: outcome.code, reason: outcome.reason }),
    });
    // Settled in batches, off the request's path: a settle lost with the process only costs a re-send.
    this.#flush ??= setTimeout(() => void this.#flushSettled(), 20);
  }

  async #flushSettled(): Promise<void> {
    clearTimeout(this.#flush);
    this.#flush = undefined;
    const batch = this.#settling;
    this.#settling = [];
    try {
      await settle(this.#db, batch);
    } catch (error) {
      log.warn(
        { commands: batch.length, ...errorFields(error) },
        "could not record outcomes; they are re-sent",
      );
    }
  }

  /** Forgets settled commands older than a day. */
  forgetSettled(): Promise<void> {
    return forgetSettled(this.#db);
  }

  /** The latest create of a VM this gateway answered for. */
  createOf(vmId: string): Promise<CommandRecord | undefined> {
    return createOf(this.#db, vmId);
  }

  /** Creates whose outcome is not known yet (one user's, or everyone's). */
  unsettledCreates(userId: number | null): Promise<CommandRecord[]> {
    return unsettledCreates(this.#db, userId);
  }
}

/** A settled record as the outcome it had. */
export function outcomeOf(r: CommandRecord): CommandOutcome {
  if (r.outcome === "rejected")
    return { status: "rejected", code: (r.code ?? "conflict") as never, reason: r.reason ?? "refused" };
  if (r.outcome === "accepted") return { status: "accepted", eventType: r.outcome_type ?? "", data: {} };
  return { status: "pending" };
}
