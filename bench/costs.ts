/**
 * What each VM costs the machine over a benchmark's window: CPU per process (each service,
 * nats-server and the whole PostgreSQL cluster, from /proc), messages in and out at the NATS server
 * (its /varz), commits per database (pg_stat_database) and spans exported. The e2e benchmark samples
 * before and after its run and prints the difference divided by the VMs made.
 */
import { readFileSync } from "node:fs";
import type pg from "pg";
import { processTree } from "../scripts/chaos/infra.ts";

/** /proc reports CPU in USER_HZ ticks, 100 a second on every Linux ABI. */
const MS_PER_TICK = 10;

export interface CostSources {
  /** Each process to charge by name (a service, nats-server): its own CPU and its reaped children's. */
  processes(): ReadonlyMap<string, number>;
  /** The NATS server's monitoring endpoint. */
  natsMonitorUrl: string;
  /** A connection to the PostgreSQL server the services use, as a superuser (to find the postmaster). */
  admin: pg.Client;
  /** The prefix of the databases to count commits in (the run's namespace). */
  databasePrefix: string;
  /** Spans received so far, as "service: span name". */
  spans(): readonly string[];
}

export interface Sample {
  cpuMs: Map<string, number>;
  natsIn: number;
  natsOut: number;
  commits: Map<string, number>;
  /** How many spans had been received. */
  spans: number;
}

/** utime+stime, and cutime+cstime (children waited for), in ms; 0 for a process already gone. */
function cpuOf(pid: number): { own: number; reaped: number } {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command (in parentheses, may hold spaces) start at field 3, state.
    const f = stat
      .slice(stat.lastIndexOf(")") + 2)
      .split(" ")
      .map(Number);
    return { own: (f[11]! + f[12]!) * MS_PER_TICK, reaped: (f[13]! + f[14]!) * MS_PER_TICK };
  } catch {
    return { own: 0, reaped: 0 };
  }
}

export async function sample(sources: CostSources): Promise<Sample> {
  const cpuMs = new Map<string, number>();
  for (const [name, pid] of sources.processes()) {
    const { own, reaped } = cpuOf(pid);
    cpuMs.set(name, own + reaped);
  }
  // The cluster: every live process under the postmaster, and what the postmaster reaped (ended backends).
  const { rows } = await sources.admin.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
  const backend = readFileSync(`/proc/${rows[0]!.pid}/stat`, "utf8");
  const postmaster = Number(backend.slice(backend.lastIndexOf(")") + 2).split(" ")[1]);
  let postgres = cpuOf(postmaster).reaped;
  for (const pid of await processTree(postmaster)) postgres += cpuOf(pid).own;
  cpuMs.set("postgresql", postgres);

  const varz = (await (await fetch(`${sources.natsMonitorUrl}/varz`)).json()) as {
    in_msgs: number;
    out_msgs: number;
  };
  const stats = await sources.admin.query<{ datname: string; commits: string }>(
    "SELECT datname, xact_commit AS commits FROM pg_stat_database WHERE starts_with(datname, $1)",
    [sources.databasePrefix],
  );
  const commits = new Map(
    stats.rows.map((r) => [
      r.datname.slice(sources.databasePrefix.length).replace(/^_/, "") || "(main)",
      Number(r.commits),
    ]),
  );
  return { cpuMs, natsIn: varz.in_msgs, natsOut: varz.out_msgs, commits, spans: sources.spans().length };
}

/** The cost of one VM between two samples, as printable lines; the commonest spans of the window. */
export function perVm(before: Sample, after: Sample, vms: number, sources: CostSources): string[] {
  const per = (a: number, b: number): string => (vms > 0 ? ((b - a) / vms).toFixed(1) : "-");
  const cpu = [...after.cpuMs].map(([name, ms]) => [name, per(before.cpuMs.get(name) ?? 0, ms)] as const);
  const cpuTotal = [...after.cpuMs].reduce((sum, [name, ms]) => sum + ms - (before.cpuMs.get(name) ?? 0), 0);
  const commits = [...after.commits].map(([db, n]) => `${db} ${per(before.commits.get(db) ?? 0, n)}`);
  const commitTotal = [...after.commits].reduce((sum, [db, n]) => sum + n - (before.commits.get(db) ?? 0), 0);
  return [
    `CPU ms per VM: ${per(0, cpuTotal)} (${cpu.map(([name, ms]) => `${name} ${ms}`).join(", ")})`,
    `NATS messages per VM: in ${per(before.natsIn, after.natsIn)}, out ${per(before.natsOut, after.natsOut)}`,
    `PostgreSQL commits per VM: ${per(0, commitTotal)} (${commits.join(", ")})`,
    `spans per VM: ${per(before.spans, after.spans)}${commonest(sources.spans().slice(before.spans, after.spans), vms)}`,
  ];
}

/** The six commonest names among `names`, with how many of each per VM. */
function commonest(names: readonly string[], vms: number): string {
  if (names.length === 0 || vms === 0) return "";
  const counts = new Map<string, number>();
  for (const name of names) counts.set(name, (counts.get(name) ?? 0) + 1);
  const top = [...counts].sort((a, b) => b[1] - a[1]).slice(0, 6);
  return ` (${top.map(([name, n]) => `${name} ${(n / vms).toFixed(1)}`).join(", ")})`;
}
