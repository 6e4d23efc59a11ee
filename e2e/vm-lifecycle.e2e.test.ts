import { existsSync } from "node:fs";
import {
  createTestDatabase,
  createTestNats,
  describe,
  expect,
  type ReceivedSpan,
  SpanKindOtlp,
  type TestDatabase,
  type TestNats,
  test,
} from "@mikrom/testkit";
import { afterAll, inject } from "vitest";
import {
  collectorLineParser,
  type DerivedField,
  grafanaDatasources,
  interpolate,
} from "../deploy/src/grafana.ts";
import type { ServiceName } from "../scripts/system.ts";
import {
  ADMIN,
  type E2eSystem,
  type Line,
  login,
  poolAllocated,
  startE2eSystem,
  traceOfCreate,
  until,
  waitFor,
} from "./harness.ts";

const BACKEND = ["vm-service", "ippool-service", "provisioner"] as const;

/**
 * What the first test leaves for the ones after it, which look at the same run from other sides
 * (one system for all: starting another would double the file's time).
 */
interface Lived {
  e2e: E2eSystem;
  vmId: string;
  me: { id: number; username: string };
  /** The X-Request-ID of each request that changed the VM. */
  requests: Record<"create" | "stop" | "start" | "restart" | "delete", string>;
  /** A wait for a status the VM does not reach, timed from outside. */
  timedWait: { requestId: string; timeoutMs: number; wallMs: number };
}

let infra: { db: TestDatabase; nats: TestNats } | undefined;
let system: E2eSystem | undefined;
let lived: Lived | undefined;

function afterLifecycle(): Lived {
  if (!lived) throw new Error("the lifecycle test did not get to its end; nothing to look at");
  return lived;
}

afterAll(async () => {
  await system?.close();
  await infra?.nats.cleanup();
  await infra?.db.drop();
}, 60_000);

describe("Mikrom end to end", () => {
  test("a user's VM goes through its whole life, traced and logged across every service", {
    timeout: 300_000,
  }, async () => {
    const db = await createTestDatabase(inject("databaseUrl"));
    const nats = await createTestNats(inject("natsUrl"));
    infra = { db, nats };
    // audit logs each event it records at debug: its lines are checked below.
    const e2e: E2eSystem = await startE2eSystem({
      natsUrl: nats.url,
      databaseUrl: db.url,
      namespace: nats.namespace,
      serviceEnv: { audit: { LOG_LEVEL: "debug" } },
    });
    system = e2e;
    const user = await login(e2e.api, { email: "alice@e2e.mikrom", password: "alice-password-1" }, true);
    const admin = await login(e2e.api, ADMIN);
    const me = (await user.call("GET", "/api/v1/auth/me")).body;

    // Create: 201 at once, then running with an address from the default pool on the host.
    const created = await user.call("POST", "/api/v1/vms", { name: "web-1", description: "e2e" });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body.status).toBe("pending");
    const vmId: string = created.body.vm_id;
    // Answered from VmCreated, it reads as vm-service's record does, to the millisecond.
    const read = await user.call("GET", `/api/v1/vms/${vmId}`);
    expect(read.status).toBe(200);
    expect(read.body.created_at).toBe(created.body.created_at);

    const running = await waitFor(user, vmId, "running");
    expect(running.reached, JSON.stringify(running)).toBe(true);
    expect(running.vm.ip_address).toMatch(/^172\.16\.0\.\d+$/);
    expect(running.vm.host).toBe("e2e-host");
    const address: string = running.vm.ip_address;
    expect(await poolAllocated(admin)).toBe(1);

    // A wait for a status it does not reach ends at its timeout, not reached.
    const waitStarted = performance.now();
    const timedOut = await user.call("GET", `/api/v1/vms/${vmId}/wait?status=stopped&timeout=1`);
    const timedWait = {
      requestId: requestIdOf(timedOut),
      timeoutMs: 1000,
      wallMs: performance.now() - waitStarted,
    };
    expect(timedOut.status).toBe(200);
    expect(timedOut.body.reached).toBe(false);

    // Stop, start, restart.
    const stop = await user.call("POST", `/api/v1/vms/${vmId}/stop`);
    expect(stop.status).toBe(202);
    expect((await waitFor(user, vmId, "stopped")).reached).toBe(true);
    expect((await user.call("POST", `/api/v1/vms/${vmId}/stop`)).status).toBe(409);
    const start = await user.call("POST", `/api/v1/vms/${vmId}/start`);
    expect(start.status).toBe(202);
    expect((await waitFor(user, vmId, "running")).vm.ip_address).toBe(address);
    const restart = await user.call("POST", `/api/v1/vms/${vmId}/restart`);
    expect(restart.status).toBe(202);
    expect((await waitFor(user, vmId, "running")).reached).toBe(true);

    // Its whole history, each event with its trace id.
    const history = (await user.call("GET", `/api/v1/vms/${vmId}/events`)).body;
    const types = (history.events ?? history.items ?? history).map((e: { type: string }) => e.type);
    expect(types).toEqual(
      expect.arrayContaining([
        "VmCreated",
        "VmProvisioning",
        "VmRunning",
        "VmStopRequested",
        "VmStopped",
        "VmStartRequested",
        "VmRestartRequested",
      ]),
    );

    // Delete: gone from reads, the address free again.
    const deleted = await user.call("DELETE", `/api/v1/vms/${vmId}`);
    expect(deleted.status).toBe(202);
    await until(
      "the VM gone",
      () => user.call("GET", `/api/v1/vms/${vmId}`),
      (r) => r.status === 404,
      90_000,
    );
    await until(
      "the address released",
      () => poolAllocated(admin),
      (n) => n === 0,
    );

    // One trace for the create request, across every service and NATS hop.
    const createTrace = traceOfCreate(e2e, vmId);
    const spans = await e2e.otlp.waitFor(
      (all) =>
        servicesIn(all, createTrace).length >= 4 &&
        hasSpan(all, createTrace, "provisioner", SpanKindOtlp.CONSUMER),
      30_000,
    );
    const trace = spans.filter((s) => s.traceId === createTrace);
    expect(servicesIn(spans, createTrace).sort()).toEqual(
      expect.arrayContaining(["api-gateway", "ippool-service", "provisioner", "vm-service"]),
    );
    const byId = new Map(trace.map((s) => [s.spanId, s]));
    for (const consumer of trace.filter((s) => s.kind === SpanKindOtlp.CONSUMER)) {
      const parent = byId.get(consumer.parentSpanId);
      expect(parent?.kind, `${consumer.service} ${consumer.name}`).toBe(SpanKindOtlp.PRODUCER);
    }
    const hops = trace
      .filter((s) => s.kind === SpanKindOtlp.CONSUMER)
      .map((s) => `${s.service}:${s.attributes["messaging.destination.name"]}`);
    expect(hops.some((h) => h.startsWith("vm-service:") && h.includes(".cmd.vm."))).toBe(true);
    expect(hops.some((h) => h.startsWith("ippool-service:") && h.includes(".cmd.ippool."))).toBe(true);
    expect(hops.some((h) => h.startsWith("provisioner:") && h.includes(".cmd.provisioner."))).toBe(true);
    expect(hops.some((h) => h.startsWith("vm-service:") && h.includes(".evt.provisioner."))).toBe(true);

    // The log lines of that operation: its trace id, the VM's id; the provisioner knows the user.
    for (const service of [...BACKEND, "api-gateway"] as const) {
      const ofTrace = e2e.lines.filter((l) => l.service === service && l.entry.trace_id === createTrace);
      expect(ofTrace.length, `${service} logged for the create trace`).toBeGreaterThan(0);
      if (service !== "api-gateway") {
        for (const l of ofTrace) expect(l.entry.vm_id, `${service}: ${l.entry.message}`).toBe(vmId);
      } else {
        expect(ofTrace.some((l) => l.entry.vm_id === vmId)).toBe(true);
      }
    }
    for (const l of e2e.lines.filter(
      (x) => x.service === "provisioner" && x.entry.trace_id === createTrace,
    )) {
      expect(l.entry.user_id, l.entry.message as string).toBe(String(me.id));
      expect(l.entry.user_name, l.entry.message as string).toBe(me.username);
    }

    // The audit log holds every event of the VM, with actor and trace id.
    const audit = await until(
      "the audit log",
      () => admin.call("GET", `/api/v1/audit?vm_id=${vmId}&page_size=100`),
      (r) => r.status === 200 && r.body.items.some((e: { type: string }) => e.type === "VmDeleted"),
    );
    const audited = audit.body.items as Array<{
      type: string;
      trace_id: string | null;
      user_id: number | null;
    }>;
    for (const type of types) expect(audited.map((e) => e.type)).toContain(type);
    for (const e of audited) expect(e.trace_id, e.type).toMatch(/^[0-9a-f]{32}$/);
    expect(audited.find((e) => e.type === "VmCreated")?.user_id).toBe(me.id);
    expect((await user.call("GET", "/api/v1/audit")).status).toBe(403);

    // The VM was a real microVM wherever QEMU is installed (.ci/run installs it).
    const hosts = await admin.call("GET", "/api/v1/audit?type=HostRegistered&page_size=100");
    const driver = hosts.body.items[0]?.data.driver;
    expect(driver).toBe(existsSync("/usr/bin/qemu-system-x86_64") ? "qemu" : "fake");

    // Every line every service wrote is a valid JSON log line with the required fields.
    expect(e2e.invalid).toEqual([]);
    expect(e2e.lines.length).toBeGreaterThan(50);

    lived = {
      e2e,
      vmId,
      me,
      requests: {
        create: requestIdOf(created),
        stop: requestIdOf(stop),
        start: requestIdOf(start),
        restart: requestIdOf(restart),
        delete: requestIdOf(deleted),
      },
      timedWait,
    };
  });

  test("stop, start, restart and delete: each service a request reached logs its trace id, the VM and the user", async () => {
    const { e2e, vmId, me, requests } = afterLifecycle();
    const reached: Array<["stop" | "start" | "restart" | "delete", ServiceName[]]> = [
      ["stop", ["api-gateway", "vm-service", "provisioner", "audit"]],
      ["start", ["api-gateway", "vm-service", "provisioner", "audit"]],
      ["restart", ["api-gateway", "vm-service", "provisioner", "audit"]],
      ["delete", ["api-gateway", "vm-service", "provisioner", "ippool-service", "audit"]],
    ];
    for (const [operation, services] of reached) {
      const traceId = traceOfRequest(e2e, requests[operation]);
      // audit records the trace's last events a moment after the VM's state could be read back.
      const ofTrace = await until(
        `${operation}: lines of ${services.join(", ")} in trace ${traceId}`,
        async () => e2e.lines.filter((l) => l.entry.trace_id === traceId),
        (lines) => services.every((s) => lines.some((l) => l.service === s)),
        15_000,
      );
      for (const l of ofTrace) {
        // The gateway's first line of a request comes before it knows the caller or the VM.
        if (l.service === "api-gateway" && l.entry.message === "Request started") continue;
        expect(l.entry.vm_id, `${operation}: ${where(l)}`).toBe(vmId);
        expect(l.entry.user_id, `${operation}: ${where(l)}`).toBe(String(me.id));
      }
    }
  });

  test("deleting a user stops and deletes their running VMs and frees their addresses, on the real services", {
    timeout: 180_000,
  }, async () => {
    const { e2e } = afterLifecycle();
    const admin = await login(e2e.api, ADMIN);
    const before = await poolAllocated(admin);
    const leaving = await login(
      e2e.api,
      { email: "leaving@e2e.mikrom", password: "leaving-password-1" },
      true,
    );
    const mine = (await leaving.call("GET", "/api/v1/auth/me")).body;
    const vmIds: string[] = [];
    for (const name of ["leaving-1", "leaving-2"]) {
      const created = await leaving.call("POST", "/api/v1/vms", { name });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      vmIds.push(created.body.vm_id);
    }
    for (const vmId of vmIds) {
      const waited = await waitFor(leaving, vmId, "running");
      // Not reached: say where the VM is and what happened to it, for whoever reads the failure.
      const story = waited.reached ? [] : (await leaving.call("GET", `/api/v1/vms/${vmId}/events`)).body;
      expect(waited.reached, JSON.stringify({ vm: waited.vm, events: story })).toBe(true);
    }
    expect(await poolAllocated(admin)).toBe(before + 2);

    expect((await admin.call("DELETE", `/api/v1/users/${mine.id}`)).status).toBe(204);
    // The user is gone at once; each VM goes through its deletion on vm-service, the host and ippool.
    expect((await leaving.call("GET", "/api/v1/vms")).status).toBe(401);
    for (const vmId of vmIds) {
      await until(
        `${vmId} deleted`,
        async () => (await admin.call("GET", `/api/v1/vms/${vmId}`)).status,
        (status) => status === 404,
        90_000,
      );
    }
    await until(
      "their addresses freed",
      () => poolAllocated(admin),
      (n) => n === before,
      30_000,
    );
    // The host destroyed each, and the audit log says so.
    for (const vmId of vmIds) {
      await until(
        `${vmId}: VmDestroyed and VmDeleted in the audit log`,
        async () => {
          const page = (await admin.call("GET", `/api/v1/audit?vm_id=${vmId}&page_size=100`)).body;
          return (page.items as Array<{ type: string }>).map((e) => e.type);
        },
        (types) => types.includes("VmDestroyed") && types.includes("VmDeleted"),
        15_000,
      );
    }
  });

  test("every service's line in the VM's traces carries the span_id of a span that service exported in that trace", async () => {
    const life = afterLifecycle();
    const { e2e } = life;
    const lines = linesOfTraces(life);
    expect(new Set(lines.map((l) => l.service))).toEqual(
      new Set(["api-gateway", "vm-service", "ippool-service", "provisioner", "audit"]),
    );
    for (const l of lines) expect(l.entry.span_id, where(l)).toMatch(/^[0-9a-f]{16}$/);
    const spans = await exportedSpansOf(e2e, lines);
    for (const l of lines) {
      const span = spans.find((s) => s.traceId === l.entry.trace_id && s.spanId === l.entry.span_id);
      expect(span?.service, where(l)).toBe(l.service);
    }
  });

  test("audit logs each event of the VM it records, under the event's trace and its own span, with the VM and the user", async () => {
    const { e2e, vmId, me } = afterLifecycle();
    const admin = await login(e2e.api, ADMIN);
    const page = await admin.call("GET", `/api/v1/audit?vm_id=${vmId}&page_size=100`);
    const audited = page.body.items as Array<{ event_id: string; type: string; trace_id: string }>;
    expect(audited.length).toBeGreaterThanOrEqual(10);
    const recorded = audited.map((event) => {
      const line = e2e.lines.find(
        (l) => l.service === "audit" && l.entry.message === "recorded" && l.entry.event_id === event.event_id,
      );
      expect(line?.entry, event.type).toMatchObject({
        logger: "mikrom.audit",
        type: event.type,
        trace_id: event.trace_id,
        vm_id: vmId,
        user_id: String(me.id),
      });
      return line!;
    });
    const spans = await exportedSpansOf(e2e, recorded);
    for (const l of recorded) {
      const span = spans.find((s) => s.traceId === l.entry.trace_id && s.spanId === l.entry.span_id);
      expect(span?.service, where(l)).toBe("audit");
    }
  });

  test("the gateway logs a request's duration as the time it took: at least the wait asked for, at most the time seen outside", () => {
    const { e2e, timedWait } = afterLifecycle();
    const completed = e2e.lines.find(
      (l) =>
        l.service === "api-gateway" &&
        l.entry.request_id === timedWait.requestId &&
        l.entry.message === "Request completed",
    );
    const durationMs = completed?.entry.duration_ms as number;
    // The wait's deadline is counted in Date.now's whole milliseconds.
    expect(durationMs).toBeGreaterThanOrEqual(timedWait.timeoutMs - 2);
    expect(durationMs).toBeLessThanOrEqual(timedWait.wallMs);
  });

  test("Grafana: a real line's trace_id opens a trace holding the line's span, and a span's logs query finds the line", async () => {
    const life = afterLifecycle();
    const { e2e } = life;
    const lines = linesOfTraces(life);
    const spans = await exportedSpansOf(e2e, lines);
    const datasources = grafanaDatasources();
    const typeOf = (uid: string) => datasources.find((d) => d.uid === uid)?.type;
    const loki = datasources.find((d) => d.type === "loki")!;
    const tempo = datasources.find((d) => d.type === "tempo")!;
    const collector = collectorLineParser();
    // Loki's labels and structured metadata of a line, as the collector ships it.
    const labelsOf = (l: Line): Record<string, string> => {
      const fields = JSON.parse(l.raw) as Record<string, string>;
      return { service_name: fields.service ?? "", trace_id: fields[collector.traceIdField] ?? "" };
    };

    // From a line to its trace: each derived field, applied to the line as written, gives a trace id
    // whose trace (here: the spans the services exported) holds the span the line names.
    const derived = loki.jsonData?.derivedFields as DerivedField[];
    expect(derived.length).toBeGreaterThan(0);
    for (const l of lines) {
      expect(collector.matches.test(l.raw), `the collector parses ${where(l)}`).toBe(true);
      for (const field of derived) {
        expect(typeOf(field.datasourceUid), field.name).toBe("tempo");
        const value =
          field.matcherType === "label"
            ? labelsOf(l)[field.matcherRegex]
            : new RegExp(field.matcherRegex).exec(l.raw)?.[1];
        const traceId = interpolate(field.url, { "__value.raw": value ?? "" });
        const trace = spans.filter((s) => s.traceId === traceId);
        expect(
          trace.some((s) => s.spanId === l.entry.span_id && s.service === l.service),
          `${field.name} of ${where(l)}`,
        ).toBe(true);
      }
    }

    // From a span to its logs: Tempo's query, filled in for each exported span of those traces,
    // selects exactly the lines of that span's service in that trace.
    const link = tempo.jsonData?.tracesToLogsV2 as { datasourceUid: string; query: string };
    expect(typeOf(link.datasourceUid)).toBe("loki");
    const traceIds = new Set(lines.map((l) => l.entry.trace_id));
    const found = new Set<Line>();
    for (const span of spans.filter((s) => traceIds.has(s.traceId))) {
      const query = interpolate(link.query, {
        '__span.tags["service.name"]': span.service,
        "__trace.traceId": span.traceId,
      });
      const selected = e2e.lines.filter((l) => logqlSelects(query, labelsOf(l)));
      const expected = e2e.lines.filter(
        (l) => l.service === span.service && l.entry.trace_id === span.traceId,
      );
      expect(selected, query).toEqual(expected);
      for (const l of selected) found.add(l);
    }
    for (const l of lines) expect(found.has(l), `no span's logs query finds ${where(l)}`).toBe(true);
  });
});

function servicesIn(spans: ReceivedSpan[], traceId: string): string[] {
  return [...new Set(spans.filter((s) => s.traceId === traceId).map((s) => s.service))];
}

function hasSpan(spans: ReceivedSpan[], traceId: string, service: string, kind: number): boolean {
  return spans.some((s) => s.traceId === traceId && s.service === service && s.kind === kind);
}

/** The X-Request-ID the gateway answered with (its log lines of the request carry it). */
function requestIdOf(reply: { headers: Headers }): string {
  return reply.headers.get("x-request-id") ?? "";
}

function where(l: Line): string {
  return `${l.service}: ${String(l.entry.message)}`;
}

/** The trace of the request with this X-Request-ID: the gateway's closing line of it names both. */
function traceOfRequest(e2e: E2eSystem, requestId: string): string {
  const line = e2e.lines.find(
    (l) =>
      l.service === "api-gateway" &&
      l.entry.request_id === requestId &&
      l.entry.message === "Request completed",
  );
  expect(line?.entry.trace_id, `the gateway's line of request ${requestId}`).toMatch(/^[0-9a-f]{32}$/);
  return line!.entry.trace_id as string;
}

/** Every line, of every service, in the traces of the requests that changed the VM. */
function linesOfTraces({ e2e, requests }: Lived): Line[] {
  const traces = new Set(Object.values(requests).map((id) => traceOfRequest(e2e, id)));
  return e2e.lines.filter((l) => traces.has(l.entry.trace_id as string));
}

/** The exported spans, once every line's span is among them (or what there is after 15 s). */
async function exportedSpansOf(e2e: E2eSystem, lines: Line[]): Promise<ReceivedSpan[]> {
  const exported = (all: ReceivedSpan[], l: Line) =>
    all.some((s) => s.traceId === l.entry.trace_id && s.spanId === l.entry.span_id);
  return e2e.otlp.waitFor((all) => lines.every((l) => exported(all, l)), 15_000).catch(() => e2e.otlp.spans);
}

/**
 * Whether a LogQL query of the form Grafana's trace-to-logs link uses — a stream selector and label
 * filters, each `name="value"` — selects a line with these labels.
 */
function logqlSelects(query: string, labels: Record<string, string>): boolean {
  const shape = /^\{([^}]*)\}((?:\s*\|\s*\w+\s*=\s*"[^"]*")*)\s*$/.exec(query);
  if (!shape) throw new Error(`not a query of the form this test evaluates: ${query}`);
  const matchers = [...`${shape[1]} ${shape[2]}`.matchAll(/(\w+)\s*=\s*"([^"]*)"/g)];
  return matchers.every(([, name, value]) => labels[name!] === value);
}
