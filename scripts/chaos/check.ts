/**
 * The invariants of a chaos run, as pure functions over what the load recorded and what was read
 * once the system had settled. Every violation names its evidence (VM, key, response, time).
 */
import type { CreateRecord, ResponseRecord } from "./load.ts";

export const TRANSITIONAL = ["pending", "provisioning", "starting", "stopping", "restarting", "deleting"];

/** Each kind of violation, in the order of the summary line, with its name there. */
export const KINDS = {
  crashes: "crashes",
  http500: "http500",
  http5xx: "http5xx",
  noRetryAfter: "503noRetryAfter",
  duplicateKeys: "dupKeys",
  lostCreates: "lostCreates",
  undeletedDeletes: "undeleted",
  notFound: "404s",
  stuck: "stuck",
  doubleAddresses: "doubleIps",
  leakedAddresses: "leakedIps",
  errored: "errorVms",
  audit: "audit",
  unreadable: "unreadable",
  fresh: "fresh",
} as const;
export type Kind = keyof typeof KINDS;

export interface Violation {
  readonly kind: Kind;
  readonly detail: Record<string, unknown>;
}

export interface CrashRecord {
  readonly service: string;
  readonly code: number | null;
  readonly signal: string | null;
  /** ms since the load began (negative: during start-up). */
  readonly t: number;
  readonly at: string;
  /** The service's last lines before it exited. */
  readonly lastLines: string[];
}

export interface VmRow {
  readonly vm_id: string;
  readonly name: string;
  readonly status: string;
  readonly ip_address: string | null;
  readonly error_message: string | null;
  readonly user_id: number;
  readonly host: string | null;
}

export interface History {
  /**
   * The answer to `GET /vms/{id}/events` as the superuser: 200 for a live VM; 404 for a deleted VM
   * (the gateway reads the VM before its history) as for one that never existed.
   */
  readonly status: number;
  readonly eventIds: string[];
  readonly types: string[];
}

/** What the audit log holds of one VM (its own events, context `vm`), in the log's order. */
export interface Audited {
  readonly eventIds: string[];
  readonly types: string[];
}

export interface FinalReads {
  /** Every live VM, as the superuser lists them once settled; null when the list could not be read. */
  readonly vms: VmRow[] | null;
  /** VM histories by vm_id: every VM listed, every VM an answer named, every VM the audit log created. */
  readonly histories: Record<string, History>;
  /** What the audit log holds of each VM, by vm_id; absent when unreadable. */
  readonly audit: Record<string, Audited>;
  /** Every VmCreated in the audit log: which VM, under which name. */
  readonly auditCreated: Array<{ vmId: string; name: string }> | null;
  /** `allocated` of every pool (GET /ippools/stats); null when it could not be read. */
  readonly allocated: number | null;
  /** Whether no VM was in a transitional status when settling ended. */
  readonly settled: boolean;
  /** Reads that failed for good (after retries), e.g. `GET /vms/srv-1/events: 503`. */
  readonly readErrors: string[];
}

export interface Fresh {
  readonly ok: boolean;
  readonly detail: string;
}

export interface ChaosData {
  readonly responses: readonly ResponseRecord[];
  readonly creates: readonly CreateRecord[];
  readonly crashes: readonly CrashRecord[];
  readonly final: FinalReads;
  readonly fresh: Fresh;
}

export interface Verdict {
  readonly counts: Record<Kind, number>;
  readonly violations: Violation[];
  readonly pass: boolean;
}

export function check(data: ChaosData): Verdict {
  const violations = [
    ...crashes(data.crashes),
    ...serverErrors(data.responses),
    ...duplicateKeys(data.creates, data.final),
    ...lostCreates(data.creates, data.responses, data.final),
    ...undeletedDeletes(data.responses, data.final),
    ...notFound(data.responses, data.creates),
    ...statuses(data.final),
    ...addresses(data.final),
    ...auditMismatches(data.final),
    ...data.final.readErrors.map((read): Violation => ({ kind: "unreadable", detail: { read } })),
    ...(data.fresh.ok ? [] : [{ kind: "fresh", detail: { reason: data.fresh.detail } } as Violation]),
  ];
  const counts = Object.fromEntries(Object.keys(KINDS).map((k) => [k, 0])) as Record<Kind, number>;
  for (const v of violations) counts[v.kind] += typeof v.detail.count === "number" ? v.detail.count : 1;
  return { counts, violations, pass: violations.length === 0 };
}

export function crashes(records: readonly CrashRecord[]): Violation[] {
  return records.map((c) => ({ kind: "crashes", detail: { ...c } }));
}

/** 500s; other 5xx but 503; 503 without Retry-After. */
export function serverErrors(responses: readonly ResponseRecord[]): Violation[] {
  const out: Violation[] = [];
  for (const r of responses) {
    if (r.status === 500) out.push({ kind: "http500", detail: { ...r } });
    else if (r.status > 500 && r.status !== 503) out.push({ kind: "http5xx", detail: { ...r } });
    else if (r.status === 503 && !r.retryAfter) out.push({ kind: "noRetryAfter", detail: { ...r } });
  }
  return out;
}

/** A key whose answers, the VM list or the audit log show more than one VM under its name. */
export function duplicateKeys(creates: readonly CreateRecord[], final: FinalReads): Violation[] {
  const byName = new Map<string, Set<string>>();
  const add = (name: string, vmId: string): void => {
    byName.set(name, (byName.get(name) ?? new Set()).add(vmId));
  };
  for (const vm of final.vms ?? []) add(vm.name, vm.vm_id);
  for (const c of final.auditCreated ?? []) add(c.name, c.vmId);
  const out: Violation[] = [];
  for (const create of creates) {
    const answered = new Set(create.vmIds);
    const seen = byName.get(create.name) ?? new Set<string>();
    const all = new Set([...answered, ...seen]);
    if (all.size > 1)
      out.push({
        kind: "duplicateKeys",
        detail: {
          key: create.key,
          name: create.name,
          vmIds: [...all],
          answered: [...answered],
          outcome: create.outcome,
          attempts: create.attempts,
        },
      });
  }
  return out;
}

/** Delete answers that may have taken effect: 202, or no definitive answer (no answer, 5xx). */
function mayHaveDeleted(r: ResponseRecord): boolean {
  return r.route === "DELETE /vms/:id" && (r.status === 202 || r.status === 0 || r.status >= 500);
}

/**
 * A VM answered 201/202 that never existed: not listed, no history, and not one event of it in the
 * audit log (a deleted VM's history is not served, so the audit log is what shows it existed). Or a
 * VM that is gone although no delete of it was ever acknowledged or left without an answer.
 */
export function lostCreates(
  creates: readonly CreateRecord[],
  responses: readonly ResponseRecord[],
  final: FinalReads,
): Violation[] {
  if (final.vms === null) return [];
  const live = new Set(final.vms.map((v) => v.vm_id));
  const deleteTried = new Set(responses.filter(mayHaveDeleted).map((r) => r.vmId));
  const out: Violation[] = [];
  for (const create of creates) {
    if (create.outcome !== "acked") continue;
    for (const vmId of create.vmIds) {
      const history = final.histories[vmId];
      if (live.has(vmId) || history?.status === 200) continue;
      const audited = final.audit[vmId];
      if (history === undefined || audited === undefined) continue; // unread: counted as unreadable
      const base = { vmId, key: create.key, name: create.name, user: create.user };
      if (audited.eventIds.length === 0)
        out.push({
          kind: "lostCreates",
          detail: { ...base, reason: "acknowledged, never existed (not listed, no history, not audited)" },
        });
      else if (!deleteTried.has(vmId))
        out.push({
          kind: "lostCreates",
          detail: { ...base, reason: "gone though never deleted", audited: audited.types },
        });
    }
  }
  return out;
}

/** A VM whose delete was answered 202 and that is still listed once settled. */
export function undeletedDeletes(responses: readonly ResponseRecord[], final: FinalReads): Violation[] {
  if (final.vms === null) return [];
  const live = new Map(final.vms.map((v) => [v.vm_id, v]));
  const acked = new Map<string, ResponseRecord>();
  for (const r of responses)
    if (r.route === "DELETE /vms/:id" && r.status === 202 && r.vmId && !acked.has(r.vmId))
      acked.set(r.vmId, r);
  const out: Violation[] = [];
  for (const [vmId, r] of acked) {
    const vm = live.get(vmId);
    if (vm) out.push({ kind: "undeletedDeletes", detail: { vmId, deleteAt: r.t, status: vm.status, vm } });
  }
  return out;
}

/**
 * A 404 on a VM that was acknowledged, when no earlier delete of it may have taken effect (a 202, or
 * a delete left without an answer: it may have happened, so the 404 is then explained).
 */
export function notFound(
  responses: readonly ResponseRecord[],
  creates: readonly CreateRecord[],
): Violation[] {
  const acked = new Set(creates.filter((c) => c.outcome === "acked").flatMap((c) => c.vmIds));
  const firstDelete = new Map<string, number>();
  for (const r of responses) {
    if (!r.vmId || !mayHaveDeleted(r)) continue;
    firstDelete.set(r.vmId, Math.min(firstDelete.get(r.vmId) ?? Number.POSITIVE_INFINITY, r.t));
  }
  const out: Violation[] = [];
  for (const r of responses) {
    if (r.status !== 404 || !r.vmId || !acked.has(r.vmId)) continue;
    const deletedAt = firstDelete.get(r.vmId);
    if (deletedAt !== undefined && deletedAt < r.t) continue;
    out.push({ kind: "notFound", detail: { ...r } });
  }
  return out;
}

/** Stuck in a transitional status after settling; in `error` (the fake driver never fails). */
export function statuses(final: FinalReads): Violation[] {
  const out: Violation[] = [];
  for (const vm of final.vms ?? []) {
    if (TRANSITIONAL.includes(vm.status)) out.push({ kind: "stuck", detail: { ...vm } });
    if (vm.status === "error") out.push({ kind: "errored", detail: { ...vm } });
  }
  return out;
}

/** An address held by two live VMs; pool `allocated` against the addresses live VMs hold. */
export function addresses(final: FinalReads): Violation[] {
  if (final.vms === null) return [];
  const holders = new Map<string, string[]>();
  for (const vm of final.vms)
    if (vm.ip_address) holders.set(vm.ip_address, [...(holders.get(vm.ip_address) ?? []), vm.vm_id]);
  const out: Violation[] = [];
  for (const [ip, vmIds] of holders)
    if (vmIds.length > 1) out.push({ kind: "doubleAddresses", detail: { ip, vmIds } });
  if (final.allocated !== null && final.allocated !== holders.size)
    out.push({
      kind: "leakedAddresses",
      detail: {
        count: Math.abs(final.allocated - holders.size),
        allocated: final.allocated,
        heldByLiveVms: holders.size,
      },
    });
  return out;
}

/**
 * Published on a VM's subject, audited, but by design no part of its history: vm-service's answer
 * to a command it refused.
 */
export const NOT_IN_HISTORY = ["CommandRejected"];

/**
 * A live VM whose history (its event ids) and the audit log's entries for it differ: missing from the
 * audit log, in it but not in the history, or in it twice. (A deleted VM's history is not served.)
 */
export function auditMismatches(final: FinalReads): Violation[] {
  const out: Violation[] = [];
  for (const [vmId, history] of Object.entries(final.histories)) {
    const all = final.audit[vmId];
    if (all === undefined || history.status !== 200) continue;
    const kept = all.types.map((type) => !NOT_IN_HISTORY.includes(type));
    const audited = {
      eventIds: all.eventIds.filter((_, i) => kept[i]),
      types: all.types.filter((_, i) => kept[i]),
    };
    const inHistory = new Set(history.eventIds);
    const inAudit = new Set(audited.eventIds);
    const missing = history.eventIds.filter((id) => !inAudit.has(id));
    const extra = audited.eventIds.filter((id) => !inHistory.has(id));
    const twice = audited.eventIds.length - inAudit.size;
    if (missing.length > 0 || extra.length > 0 || twice > 0) {
      const typeOf = (ids: string[], types: string[]) => (id: string) => types[ids.indexOf(id)];
      out.push({
        kind: "audit",
        detail: {
          vmId,
          missingFromAudit: missing.map((id) => ({ id, type: typeOf(history.eventIds, history.types)(id) })),
          notInHistory: extra.map((id) => ({ id, type: typeOf(audited.eventIds, audited.types)(id) })),
          duplicated: twice,
        },
      });
    }
  }
  return out;
}

/** The one line a run ends with. */
export function summaryLine(head: string, verdict: Verdict, fresh: Fresh): string {
  const parts = (Object.keys(KINDS) as Kind[])
    .filter((k) => k !== "fresh")
    .map((k) => `${KINDS[k]}=${verdict.counts[k]}`);
  return `${head}; ${parts.join(" ")} fresh=${fresh.ok ? "ok" : "FAIL"} -> ${verdict.pass ? "PASS" : "FAIL"}`;
}
