import { isUnavailable } from "@mikrom/bus";
import { IPPOOL_SERVICE } from "@mikrom/contracts";
import { createLogger, errorFields } from "@mikrom/telemetry";
import { sql } from "kysely";
import { judgeHosts } from "../domain/hosts.ts";
import type { Step } from "../domain/vm.ts";
import { hostLoads, vmsOnHost } from "../store/read-model.ts";
import type { HandlerDeps } from "./context.ts";
import { driveVm } from "./events.ts";

const log = createLogger("mikrom.vm-service.sweeper");

/** A late step's command is sent again after resendAfterMs, then at doubling intervals up to this. */
const MAX_RESEND_MS = 60_000;

export interface SweepReport {
  readonly deadlines: number;
  readonly resent: number;
  readonly hostsUnreachable: number;
  readonly hostsLost: number;
}

/**
 * Fires due step deadlines, sends again the commands of late steps, and judges silent hosts.
 * Deadlines live in the database, written with the event that starts the step, so they survive a
 * restart; every replica may sweep (the per-VM lock and the stale-step checks make a double fire
 * harmless).
 */
export async function sweepOnce(deps: HandlerDeps): Promise<SweepReport> {
  // Just started, or just back from an outage of its database: answers that arrived meanwhile wait
  // in the consumers. Let them catch up before anything is judged late.
  const catchUpMs = Math.min(CATCH_UP_MS, ...Object.values(deps.deadlines));
  const catchingUp = deps.now() - Math.max(deps.startedAtMs, lastFailureMs) < catchUpMs;
  const deadlines = catchingUp ? 0 : await fireDeadlines(deps);
  const resent = await resendLate(deps);
  const hosts = catchingUp ? { hostsUnreachable: 0, hostsLost: 0 } : await judge(deps);
  return { deadlines, resent, ...hosts };
}

/**
 * How long after a start or an outage deadlines and hosts wait for the consumers to catch up (no
 * longer than the shortest deadline).
 */
const CATCH_UP_MS = 10_000;
/** When a sweep last failed (its database away), by the service's clock. */
let lastFailureMs = Number.NEGATIVE_INFINITY;

/**
 * A deadline measures the answer's lateness from when the step's command first went out. One due
 * before that (the command could not be sent: the database or NATS was away) is moved to its send
 * time plus the timeout; an unsent one waits a timeout more.
 */
async function sentLate(
  deps: HandlerDeps,
  d: { vm_id: string; due_at: Date; timeout_ms: number; command_id: string | null },
): Promise<boolean> {
  if (d.command_id === null) return false;
  const first = await deps.store.firstSentAt(d.command_id);
  const from = first ?? new Date(deps.now());
  if (from.getTime() + d.timeout_ms <= d.due_at.getTime()) return false;
  await deps.db
    .updateTable("deadlines")
    .set({ due_at: sql<Date>`${from}::timestamptz + make_interval(secs => ${d.timeout_ms / 1000})` })
    .where("vm_id", "=", d.vm_id)
    .where("due_at", "=", d.due_at)
    .execute();
  return true;
}

/** Whether AllocateIp commands wait in the IP pool's queue: asked at most once per asker. */
function ippoolQueueAsker(deps: HandlerDeps): () => Promise<boolean> {
  let answer: Promise<boolean> | undefined;
  return () => {
    if (!deps.commandsWaiting) return Promise.resolve(false);
    answer ??= deps.commandsWaiting(deps.names.commandsTo(IPPOOL_SERVICE));
    return answer;
  };
}

async function fireDeadlines(deps: HandlerDeps): Promise<number> {
  const due = await deps.db
    .selectFrom("deadlines")
    .selectAll()
    .where("due_at", "<=", sql<Date>`now()`)
    .orderBy("due_at")
    .limit(200)
    .execute();
  let fired = 0;
  // Asked once a sweep, and only when an allocation is due: one request to JetStream.
  const ippoolBehind = ippoolQueueAsker(deps);
  for (const d of due) {
    if (await sentLate(deps, d)) continue;
    const receiverBehind = d.step === "allocate" ? await ippoolBehind() : false;
    fired++;
    // The inbox key makes one deadline fire once even when two replicas sweep together.
    await driveVm(
      deps,
      d.vm_id,
      {
        type: "DeadlineReached",
        data: { step: d.step as Step, timeoutMs: d.timeout_ms, ...(receiverBehind && { receiverBehind }) },
      },
      {
        consumer: "deadlines",
        messageId: `${d.vm_id}:${d.step}:${d.due_at.getTime()}`,
        correlationId: null,
        actor: null,
      },
    );
    // Gone unless the decision armed a new one (a step waiting for its unreachable host).
    await deps.db
      .deleteFrom("deadlines")
      .where("vm_id", "=", d.vm_id)
      .where("due_at", "=", d.due_at)
      .execute();
  }
  return fired;
}

/**
 * A step whose answer is late has its command sent again, the same message: a NATS crash may have
 * lost it (or its answer, which the receiver then sends again) before the deadline compensates.
 */
async function resendLate(deps: HandlerDeps): Promise<number> {
  const late = await deps.db
    .selectFrom("deadlines")
    .select(["vm_id", "step", "resends", "command_id"])
    .where("resend_at", "<=", sql<Date>`now()`)
    .where("due_at", ">", sql<Date>`now()`)
    .orderBy("resend_at")
    .limit(200)
    .execute();
  const ippoolBehind = ippoolQueueAsker(deps);
  let resent = 0;
  for (const d of late) {
    // Not out yet (NATS or the relay is behind): the first send is still to come, nothing to repeat.
    if (d.command_id !== null && (await deps.store.firstSentAt(d.command_id)) === null) continue;
    // A copy in a queue nobody drains yet adds nothing: sent again once the receiver takes its queue.
    if (d.step === "allocate" && (await ippoolBehind())) continue;
    resent++;
    await driveVm(
      deps,
      d.vm_id,
      { type: "ResendDue", data: { step: d.step as Step, attempt: d.resends + 1 } },
      null,
    );
    const nextMs = Math.min(MAX_RESEND_MS, deps.config.resendAfterMs * 2 ** (d.resends + 1));
    await deps.db
      .updateTable("deadlines")
      .set({
        resend_at: sql<Date>`now() + make_interval(secs => ${nextMs / 1000})`,
        resends: d.resends + 1,
      })
      .where("vm_id", "=", d.vm_id)
      .where("step", "=", d.step)
      .execute();
  }
  return resent;
}

/**
 * Hosts silent past the heartbeat timeout become unreachable (their VMs keep their state); those
 * unreachable past the grace are lost, and only then are their VMs failed. No host is found silent
 * before this process has listened for a whole timeout: silence it did not hear is not silence.
 */
async function judge(deps: HandlerDeps): Promise<{ hostsUnreachable: number; hostsLost: number }> {
  // A beat that arrived but waits for its window to be written is not silence.
  await deps.writeHeartbeats?.();
  const now = deps.now();
  const { hostHeartbeatTimeoutMs: heartbeatTimeoutMs, hostLostAfterMs: lostAfterMs } = deps.config;
  const hosts = await hostLoads(deps.db);
  const verdict = judgeHosts(hosts, now, { heartbeatTimeoutMs, lostAfterMs });
  const listening = now - deps.startedAtMs >= heartbeatTimeoutMs;
  for (const hostId of listening ? verdict.unreachable : []) {
    const host = hosts.find((h) => h.hostId === hostId)!;
    log.warn(
      { host_id: hostId, silent_ms: now - host.lastSeenMs, lost_after_ms: lostAfterMs },
      "host unreachable: its VMs keep their state until it is back or declared lost",
    );
    await deps.db
      .updateTable("hosts")
      .set({ status: "unreachable", unreachable_since: new Date(now) })
      .where("host_id", "=", hostId)
      .where("status", "=", "up")
      .where("last_seen", "=", new Date(host.lastSeenMs))
      .execute();
  }
  for (const hostId of verdict.lost) {
    const host = hosts.find((h) => h.hostId === hostId)!;
    const reason = `no heartbeat from host ${hostId} for ${now - host.lastSeenMs} ms`;
    log.warn({ host_id: hostId, reason }, "host lost");
    for (const vmId of await vmsOnHost(deps.db, hostId))
      await driveVm(deps, vmId, { type: "HostLost", data: { hostId, reason } }, null);
    // Marked lost only after its VMs are handled: a crash in between repeats the sweep, not loses it.
    await deps.db
      .updateTable("hosts")
      .set({ status: "lost" })
      .where("host_id", "=", hostId)
      .where("status", "=", "unreachable")
      .execute();
  }
  return { hostsUnreachable: listening ? verdict.unreachable.length : 0, hostsLost: verdict.lost.length };
}

export function startSweeper(deps: HandlerDeps): { stop(): Promise<void> } {
  let running: Promise<unknown> = Promise.resolve();
  let stopped = false;
  const timer = setInterval(() => {
    running = running.then(() =>
      stopped
        ? undefined
        : sweepOnce(deps).catch((error) => {
            lastFailureMs = deps.now();
            if (isUnavailable(error)) log.warn(errorFields(error), "sweep skipped: the database is away");
            else log.error(errorFields(error), "sweep failed");
          }),
    );
  }, deps.config.sweepIntervalMs);
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
