/**
 * VM lifecycles per second through the VM service alone. The IP pool and a provisioner are played by
 * a responder that answers each AllocateIp with IpAllocated and each BootVm with VmBooted at once,
 * so the figures are the service's: command → VmCreated → AllocateIp … IpAllocated → VmProvisioning →
 * BootVm … VmBooted → VmRunning, with CONCURRENCY lifecycles in flight. Also the p50/p99 of its own
 * decision latency (one handler transaction: inbox, lock, load, decide, append, project, outbox).
 *
 * node_modules/.bin/node bench/vm-service.bench.ts [count] [in flight]
 */
import { randomBytes, randomUUID } from "node:crypto";
import { setTimeout as delay } from "node:timers/promises";
import {
  CreateVm,
  Header,
  HostHeartbeat,
  HostRegistered,
  IpAllocated,
  type MessageDef,
  names as namesFor,
  VmBooted,
} from "@mikrom/contracts";
import { setLogDestination } from "@mikrom/telemetry";
import { jetstream } from "@nats-io/jetstream";
import { connect, headers as natsHeaders } from "@nats-io/transport-node";
import pg from "pg";
import { loadConfig } from "../services/vm-service/src/config.ts";
import { startVmService } from "../services/vm-service/src/service.ts";

// Warnings and errors are kept and summarized at the end; the rest is dropped.
const problems: string[] = [];
setLogDestination({
  write: (line: string) => {
    if (/"level":"(WARN|ERROR|FATAL)"/.test(line)) problems.push(line);
    return true;
  },
});

const COUNT = Number(process.argv[2] ?? 1500);
const CONCURRENCY = Number(process.argv[3] ?? 64);
const TIME_LIMIT_MS = 40_000;
const serverUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const natsUrl = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const suffix = randomBytes(4).toString("hex");
const namespace = `bench_vm_${suffix}`;
const dbUrl = new URL(serverUrl);
dbUrl.pathname = `/bench_vm_${suffix}`;
const names = namesFor(namespace);

const decisions: number[] = [];
const service = await startVmService(
  loadConfig({
    NATS_URL: natsUrl,
    VM_DATABASE_URL: dbUrl.toString(),
    MIKROM_NAMESPACE: namespace,
    MAX_VMS_PER_USER: "100000",
    MAX_VCPUS_PER_USER: "3200000",
    MAX_MEMORY_MB_PER_USER: "3276800000",
    LOG_LEVEL: "warn",
  }),
  { onDecision: (ms) => decisions.push(ms) },
);

const nc = await connect({ servers: natsUrl, noAsyncTraces: true, name: "vm-service bench" });
const js = jetstream(nc);

function publish<D extends MessageDef>(subject: string, def: D, data: unknown): Promise<unknown> {
  const id = randomUUID();
  const h = natsHeaders();
  h.set(Header.MsgId, id);
  h.set(Header.Type, def.type);
  h.set(Header.SchemaVersion, String(def.version));
  return js.publish(subject, JSON.stringify(data), { msgID: id, headers: h });
}

await publish(names.event("host", "bench-host", "HostRegistered"), HostRegistered, {
  hostId: "bench-host",
  driver: "fake",
  vcpus: 1_000_000,
  memoryMb: 1_000_000_000,
  startedAt: new Date().toISOString(),
});

// The provisioner's heartbeat: without it the host is lost after HOST_HEARTBEAT_TIMEOUT_MS.
const heartbeat = setInterval(() => {
  void publish(names.event("host", "bench-host", "HostHeartbeat"), HostHeartbeat, {
    hostId: "bench-host",
    at: new Date().toISOString(),
    runningVms: lifecycles.length,
  });
}, 2000);

// The other services, answering at full speed.
let octet = 0;
nc.subscribe(names.command("ippool", "allocate"), {
  callback: (_e, m) => {
    const { vmId } = m.json<{ vmId: string }>();
    const n = octet++;
    void publish(names.event("ippool", vmId, "IpAllocated"), IpAllocated, {
      vmId,
      poolId: "pool-0000b0b0",
      pool: "default",
      address: `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`,
      prefixLength: 16,
      gateway: "10.0.0.1",
    });
  },
});
nc.subscribe(`${namespace}.cmd.provisioner.*.boot`, {
  callback: (_e, m) => {
    const { vmId } = m.json<{ vmId: string }>();
    // A host states facts under its own id: vm-service dead-letters a fact from another host.
    void publish(names.event("provisioner", "bench-host", "VmBooted"), VmBooted, {
      vmId,
      hostId: "bench-host",
      driver: "fake",
      bootMs: 0,
    });
  },
});

const started = new Map<string, number>();
const stuck: string[] = [];
const lifecycles: number[] = [];
const waiters = new Map<string, () => void>();
nc.subscribe(`${namespace}.evt.vm.*.VmRunning`, {
  callback: (_e, m) => {
    const vmId = m.subject.split(".")[3]!;
    const t0 = started.get(vmId);
    if (t0 !== undefined) lifecycles.push(performance.now() - t0);
    waiters.get(vmId)?.();
  },
});
await nc.flush();

async function lifecycle(i: number): Promise<void> {
  const vmId = `srv-${i.toString(16).padStart(8, "0")}`;
  const done = new Promise<void>((resolve) => waiters.set(vmId, resolve));
  started.set(vmId, performance.now());
  await publish(names.command("vm", "create"), CreateVm, {
    vmId,
    actor: { userId: 1 + (i % 50), userName: "bench", superuser: false },
    name: `bench-${i}`,
    description: null,
    vcpuCount: 1,
    memoryMb: 128,
  });
  // A lifecycle that does not finish is counted, never waited on for ever.
  const finished = await Promise.race([done.then(() => true), delay(15_000).then(() => false)]);
  if (!finished) stuck.push(vmId);
  waiters.delete(vmId);
}

const t0 = performance.now();
let next = 0;
await Promise.all(
  Array.from({ length: CONCURRENCY }, async () => {
    while (next < COUNT && performance.now() - t0 < TIME_LIMIT_MS) await lifecycle(next++);
  }),
);
const seconds = (performance.now() - t0) / 1000;

const pct = (xs: number[], p: number): string => {
  const s = [...xs].sort((a, b) => a - b);
  return (s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0).toFixed(1);
};
process.stdout.write(
  [
    `lifecycles (create → running): ${lifecycles.length} in ${seconds.toFixed(1)} s, ${CONCURRENCY} in flight`,
    `  lifecycles/s                 ${(lifecycles.length / seconds).toFixed(0)}`,
    `  create → running p50 / p99   ${pct(lifecycles, 50)} / ${pct(lifecycles, 99)} ms`,
    ...(stuck.length > 0
      ? [`  NOT FINISHED within 15 s     ${stuck.length} (${stuck.slice(0, 3).join(", ")}…)`]
      : []),
    `decisions (one handler transaction): ${decisions.length}`,
    `  p50 / p99                    ${pct(decisions, 50)} / ${pct(decisions, 99)} ms`,
    `warnings and errors logged: ${problems.length}`,
    ...problems.slice(0, 3).map((p) => `  ${p.slice(0, 300)}`),
    "",
  ].join("\n"),
);

clearInterval(heartbeat);
await service.stop();
await nc.close();
// Clean up what the run created: its streams and its database.
const cleanup = await connect({ servers: natsUrl, noAsyncTraces: true });
const { jetstreamManager } = await import("@nats-io/jetstream");
const jsm = await jetstreamManager(cleanup);
for (const s of Object.values(names.streams)) await jsm.streams.delete(s).catch(() => false);
await cleanup.close();
const admin = new pg.Client({ connectionString: serverUrl });
await admin.connect();
await admin.query(`DROP DATABASE IF EXISTS "bench_vm_${suffix}" WITH (FORCE)`);
await admin.end();
