import { describe, expect, it } from "vitest";
import {
  type ChaosData,
  check,
  type FinalReads,
  type Kind,
  summaryLine,
  type VmRow,
} from "../scripts/chaos/check.ts";
import type { CreateRecord, ResponseRecord } from "../scripts/chaos/load.ts";

/**
 * The chaos suite's checker is pure: each invariant gets a run that breaks only it, and must count
 * exactly that; the explained cases (a 404 after a delete left without an answer, …) must not count.
 */
function vm(id: string, name: string, over: Partial<VmRow> = {}): VmRow {
  return {
    vm_id: id,
    name,
    status: "running",
    ip_address: `10.64.0.${id.length}`,
    error_message: null,
    user_id: 2,
    host: "h",
    ...over,
  };
}

function response(over: Partial<ResponseRecord>): ResponseRecord {
  return {
    t: 0,
    ms: 5,
    user: 0,
    worker: 0,
    method: "GET",
    route: "GET /vms/:id",
    status: 200,
    retryAfter: false,
    ...over,
  };
}

function create(key: string, vmIds: string[], over: Partial<CreateRecord> = {}): CreateRecord {
  return {
    key,
    name: `name-${key}`,
    user: 0,
    worker: 0,
    vmIds,
    outcome: "acked",
    attempts: 1,
    lastStatus: 201,
    ...over,
  };
}

/** A clean run: two VMs created, one deleted, everything consistent. */
function clean(): ChaosData {
  const a = vm("srv-a", "name-k1", { ip_address: "10.64.0.2" });
  const final: FinalReads = {
    vms: [a],
    histories: {
      "srv-a": { status: 200, eventIds: ["e1", "e2"], types: ["VmCreated", "VmRunning"] },
      "srv-b": { status: 404, eventIds: [], types: [] },
    },
    audit: {
      "srv-a": { eventIds: ["e1", "e2"], types: ["VmCreated", "VmRunning"] },
      "srv-b": { eventIds: ["e3", "e4"], types: ["VmCreated", "VmDeleted"] },
    },
    auditCreated: [
      { vmId: "srv-a", name: "name-k1" },
      { vmId: "srv-b", name: "name-k2" },
    ],
    allocated: 1,
    settled: true,
    readErrors: [],
  };
  return {
    responses: [
      response({ t: 0, method: "POST", route: "POST /vms", status: 201, vmId: "srv-a", key: "k1" }),
      response({
        t: 10,
        method: "POST",
        route: "POST /vms",
        status: 202,
        retryAfter: false,
        vmId: "srv-b",
        key: "k2",
      }),
      response({ t: 20, status: 503, retryAfter: true, vmId: "srv-a" }),
      response({ t: 30, method: "DELETE", route: "DELETE /vms/:id", status: 202, vmId: "srv-b" }),
    ],
    creates: [create("k1", ["srv-a"]), create("k2", ["srv-b"], { lastStatus: 202 })],
    crashes: [],
    final,
    fresh: { ok: true, detail: "ran and was deleted" },
  };
}

/** The kinds counted, without the zeros. */
function counted(data: ChaosData): Partial<Record<Kind, number>> {
  return Object.fromEntries(Object.entries(check(data).counts).filter(([, n]) => n > 0));
}

describe("the chaos checker", () => {
  it("passes a run that kept every invariant", () => {
    const verdict = check(clean());
    expect(verdict.violations).toEqual([]);
    expect(verdict.pass).toBe(true);
  });

  it("counts a service that exited unasked as a crash", () => {
    const data = clean();
    const crash = { service: "audit", code: 1, signal: null, t: 5, at: "now", lastLines: ["57P01"] };
    expect(counted({ ...data, crashes: [crash] })).toEqual({ crashes: 1 });
  });

  it("counts 500s, other 5xx but 503, and 503s without Retry-After, each apart", () => {
    const data = clean();
    const responses = [
      ...data.responses,
      response({ status: 500 }),
      response({ status: 502 }),
      response({ status: 504 }),
      response({ status: 503, retryAfter: false }),
    ];
    expect(counted({ ...data, responses })).toEqual({ http500: 1, http5xx: 2, noRetryAfter: 1 });
  });

  it("counts a key whose answers carried two vm_ids", () => {
    const data = clean();
    const creates = [create("k1", ["srv-a", "srv-x"]), data.creates[1]!];
    const final = {
      ...data.final,
      histories: { ...data.final.histories, "srv-x": { status: 404, eventIds: [], types: [] } },
      audit: { ...data.final.audit, "srv-x": { eventIds: ["x1"], types: ["VmCreated"] } },
    };
    expect(counted({ ...data, creates, final })).toMatchObject({ duplicateKeys: 1 });
  });

  it("counts a key whose name two listed VMs carry, though its answers named one", () => {
    const data = clean();
    const twin = vm("srv-twin", "name-k1", { ip_address: "10.64.0.9" });
    const final = {
      ...data.final,
      vms: [...data.final.vms!, twin],
      histories: {
        ...data.final.histories,
        "srv-twin": { status: 200, eventIds: ["t1"], types: ["VmCreated"] },
      },
      audit: { ...data.final.audit, "srv-twin": { eventIds: ["t1"], types: ["VmCreated"] } },
      allocated: 2,
    };
    expect(counted({ ...data, final })).toEqual({ duplicateKeys: 1 });
  });

  it("counts a key whose second VM only the audit log shows (deleted since)", () => {
    const data = clean();
    const final = {
      ...data.final,
      auditCreated: [...data.final.auditCreated!, { vmId: "srv-old", name: "name-k1" }],
    };
    expect(counted({ ...data, final })).toEqual({ duplicateKeys: 1 });
  });

  it("counts an acknowledged create that never existed", () => {
    const data = clean();
    const final = { ...data.final, audit: { ...data.final.audit, "srv-b": { eventIds: [], types: [] } } };
    const verdict = check({ ...data, final });
    expect(counted({ ...data, final })).toEqual({ lostCreates: 1 });
    expect(verdict.violations[0]!.detail.vmId).toBe("srv-b");
  });

  it("counts an acknowledged VM that is gone though it was never deleted", () => {
    const data = clean();
    const responses = data.responses.filter((r) => r.route !== "DELETE /vms/:id");
    expect(counted({ ...data, responses })).toEqual({ lostCreates: 1 });
  });

  it("does not count a VM gone after a delete that got no answer", () => {
    const data = clean();
    const responses = data.responses.map((r) => (r.route === "DELETE /vms/:id" ? { ...r, status: 0 } : r));
    expect(counted({ ...data, responses })).toEqual({});
  });

  it("counts an acknowledged delete whose VM is still listed", () => {
    const data = clean();
    const responses = [
      ...data.responses,
      response({ t: 40, method: "DELETE", route: "DELETE /vms/:id", status: 202, vmId: "srv-a" }),
    ];
    expect(counted({ ...data, responses })).toEqual({ undeletedDeletes: 1 });
  });

  it("counts a 404 for an acknowledged VM that no delete had touched", () => {
    const data = clean();
    const responses = [...data.responses, response({ t: 25, status: 404, vmId: "srv-b" })];
    expect(counted({ ...data, responses })).toEqual({ notFound: 1 });
  });

  it("does not count a 404 after an acknowledged delete, or after one left without an answer", () => {
    const data = clean();
    const responses = [
      ...data.responses,
      response({ t: 35, status: 404, vmId: "srv-b" }),
      response({
        t: 40,
        method: "DELETE",
        route: "DELETE /vms/:id",
        status: 503,
        retryAfter: true,
        vmId: "srv-a",
      }),
      response({ t: 50, status: 404, vmId: "srv-a" }),
    ];
    const final = {
      ...data.final,
      vms: [],
      histories: { ...data.final.histories, "srv-a": { status: 404, eventIds: [], types: [] } },
      allocated: 0,
    };
    expect(counted({ ...data, responses, final })).toEqual({});
  });

  it("counts a 404 after a delete that was refused (409): the delete did nothing", () => {
    const data = clean();
    const responses = [
      ...data.responses,
      response({ t: 21, method: "DELETE", route: "DELETE /vms/:id", status: 409, vmId: "srv-a" }),
      response({ t: 22, status: 404, vmId: "srv-a" }),
    ];
    expect(counted({ ...data, responses })).toEqual({ notFound: 1 });
  });

  it("counts VMs stuck in a transitional status and VMs in error", () => {
    const data = clean();
    const final = {
      ...data.final,
      vms: [
        { ...data.final.vms![0]!, status: "restarting" },
        vm("srv-e", "x", { status: "error", ip_address: null, error_message: "host lost" }),
      ],
      histories: { ...data.final.histories, "srv-e": { status: 200, eventIds: ["f1"], types: ["VmFailed"] } },
      audit: { ...data.final.audit, "srv-e": { eventIds: ["f1"], types: ["VmFailed"] } },
    };
    expect(counted({ ...data, final })).toEqual({ stuck: 1, errored: 1 });
  });

  it("counts an address two live VMs hold, and a pool that allocated more than live VMs hold", () => {
    const data = clean();
    const dup = vm("srv-d", "other", { ip_address: "10.64.0.2" });
    const final = {
      ...data.final,
      vms: [...data.final.vms!, dup],
      histories: {
        ...data.final.histories,
        "srv-d": { status: 200, eventIds: ["d1"], types: ["VmCreated"] },
      },
      audit: { ...data.final.audit, "srv-d": { eventIds: ["d1"], types: ["VmCreated"] } },
      allocated: 4,
    };
    expect(counted({ ...data, final })).toEqual({ doubleAddresses: 1, leakedAddresses: 3 });
  });

  it("counts a live VM whose audit entries miss an event, add one, or hold one twice", () => {
    const data = clean();
    const variants = [["e1"], ["e1", "e2", "zz"], ["e1", "e2", "e2"]];
    for (const eventIds of variants) {
      const audit = { ...data.final.audit, "srv-a": { eventIds, types: eventIds.map(() => "T") } };
      expect(counted({ ...data, final: { ...data.final, audit } }), eventIds.join()).toEqual({ audit: 1 });
    }
  });

  it("does not count a refusal the audit log holds: CommandRejected is no part of a VM's history", () => {
    const data = clean();
    const audit = {
      ...data.final.audit,
      "srv-a": { eventIds: ["e1", "r1", "e2"], types: ["VmCreated", "CommandRejected", "VmRunning"] },
    };
    expect(counted({ ...data, final: { ...data.final, audit } })).toEqual({});
  });

  it("counts final reads that failed and a fresh VM that did not run", () => {
    const data = clean();
    const final = { ...data.final, readErrors: ["GET /api/v1/ippools/stats: 503"] };
    const fresh = { ok: false, detail: "stayed pending" };
    const verdict = check({ ...data, final, fresh });
    expect(counted({ ...data, final, fresh })).toEqual({ unreadable: 1, fresh: 1 });
    expect(summaryLine("chaos seed=1 60s", verdict, fresh)).toMatch(/unreadable=1 fresh=FAIL -> FAIL$/);
  });

  it("writes every count in the summary line, PASS when all are zero", () => {
    const data = clean();
    const line = summaryLine("chaos seed=42 90s: 1 kills", check(data), data.fresh);
    expect(line).toBe(
      "chaos seed=42 90s: 1 kills; crashes=0 http500=0 http5xx=0 503noRetryAfter=0 dupKeys=0 lostCreates=0 " +
        "undeleted=0 404s=0 stuck=0 doubleIps=0 leakedIps=0 errorVms=0 audit=0 unreadable=0 fresh=ok -> PASS",
    );
  });
});
