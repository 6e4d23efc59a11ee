/**
 * The faults of a chaos run, one every few seconds at random: a service SIGKILLed and started again,
 * a nats-server SIGKILLed and started again on its port and store (one node at a time in a cluster),
 * PostgreSQL stopped abruptly and started again, or a process paused (SIGSTOP, then SIGCONT). A
 * target takes one fault at a time; each fault ends by itself, and all end at once when asked.
 */
import type { PrivatePostgres } from "../../e2e/private-infra.ts";
import { type RunningSystem, SERVICES, type ServiceName } from "../system.ts";
import { type Nats, type NatsNode, processTree, signalAll } from "./infra.ts";
import { type Random, sleep } from "./random.ts";

export type FaultKind = "kill" | "nats" | "postgres" | "pause";

export interface FaultRecord {
  /** ISO time the fault began. */
  readonly at: string;
  /** ms since the load began. */
  readonly t: number;
  readonly kind: FaultKind;
  readonly target: string;
  /** How long the target was down or paused, in ms (as drawn). */
  readonly forMs: number;
  /** ms since the load began when the target was back (running or continued). */
  backAt?: number;
  error?: string;
}

export interface FaultTargets {
  readonly system: RunningSystem;
  readonly nats: Nats;
  readonly postgres: PrivatePostgres;
}

export interface Faults {
  readonly records: FaultRecord[];
  /** Resolves when the fault period is over and every fault has ended (everything back, nothing paused). */
  readonly done: Promise<void>;
  /** Ends the period now: faults in progress end at once (targets started again, continued). */
  stop(): Promise<void>;
}

export interface FaultOptions {
  readonly rng: Random;
  readonly durationMs: number;
  readonly startedAt: number;
  /** One line per fault event, with its timestamp. */
  readonly log: (line: string) => void;
}

const KINDS: ReadonlyArray<readonly [FaultKind, number]> = [
  ["kill", 40],
  ["pause", 30],
  ["nats", 15],
  ["postgres", 15],
];

export function startFaults(targets: FaultTargets, opts: FaultOptions): Faults {
  const { rng, log } = opts;
  const records: FaultRecord[] = [];
  const busy = new Set<string>();
  const inProgress = new Set<Promise<void>>();
  const ending = new AbortController();
  const since = (): number => Date.now() - opts.startedAt;

  function begin(kind: FaultKind, target: string, forMs: number, what: string): FaultRecord {
    const record: FaultRecord = { at: new Date().toISOString(), t: since(), kind, target, forMs };
    records.push(record);
    log(`fault ${kind} ${target}: ${what}`);
    return record;
  }

  /** Runs one fault holding its target (and its group: one NATS node, one PostgreSQL at a time). */
  function run(locks: string[], work: () => Promise<void>): void {
    for (const lock of locks) busy.add(lock);
    const p = work()
      .catch((error: unknown) => log(`fault failed: ${(error as Error).message}`))
      .finally(() => {
        for (const lock of locks) busy.delete(lock);
        inProgress.delete(p);
      });
    inProgress.add(p);
  }

  /** Sleeps `ms`, or less when the period is ended early. */
  const hold = (ms: number): Promise<void> => sleep(ms, ending.signal);

  function killService(name: ServiceName): void {
    const downMs = rng.int(0, 5_000);
    run([`svc:${name}`], async () => {
      const record = begin("kill", name, downMs, `SIGKILL, restart in ${downMs} ms`);
      await targets.system.kill(name, "SIGKILL");
      await hold(downMs);
      targets.system.restart(name);
      record.backAt = since();
      log(`fault kill ${name}: started again`);
    });
  }

  function killNats(node: NatsNode): void {
    const downMs = rng.int(1_000, 5_000);
    run(["nats"], async () => {
      const record = begin("nats", node.name, downMs, `SIGKILL, start in ${downMs} ms`);
      await node.kill();
      await hold(downMs);
      await startWithRetries(`nats ${node.name}`, () => node.start());
      record.backAt = since();
      log(`fault nats ${node.name}: started again`);
    });
  }

  function crashPostgres(): void {
    const downMs = rng.int(1_000, 10_000);
    run(["postgres"], async () => {
      const record = begin("postgres", "postgres", downMs, `pg_ctl stop -m immediate, start in ${downMs} ms`);
      await targets.postgres.crash();
      await hold(downMs);
      await startWithRetries("postgres", () => targets.postgres.start());
      record.backAt = since();
      log("fault postgres: started again");
    });
  }

  function pause(target: string, lock: string, rootPid: () => Promise<number | undefined>): void {
    const pausedMs = rng.int(4_000, 12_000);
    run([lock], async () => {
      const pid = await rootPid();
      if (pid === undefined) return;
      const record = begin("pause", target, pausedMs, `SIGSTOP for ${pausedMs} ms`);
      const pids = await processTree(pid);
      signalAll(pids, "SIGSTOP");
      try {
        await hold(pausedMs);
      } finally {
        // The stopped processes first, at once: reading the process tree again walks /proc and has
        // taken tens of seconds on a loaded machine, which stretched a 5 s pause past a minute.
        signalAll(pids, "SIGCONT");
        record.backAt = since();
        log(`fault pause ${target}: SIGCONT`);
        // Then the tree again: nothing new can have been forked by a stopped parent, but be sure.
        signalAll(
          (await processTree(pid)).filter((p) => !pids.includes(p)),
          "SIGCONT",
        );
      }
    });
  }

  async function startWithRetries(what: string, start: () => Promise<void>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await start();
        return;
      } catch (error) {
        log(`start of ${what} failed (attempt ${attempt}): ${(error as Error).message}`);
        if (attempt >= 10) throw error;
        await sleep(1_000);
      }
    }
  }

  const free = <T>(items: readonly T[], lockOf: (item: T) => string): T[] =>
    items.filter((item) => !busy.has(lockOf(item)));

  /** One fault of a kind drawn at random, on a target that is not already in one (else none this time). */
  function next(): void {
    const total = KINDS.reduce((sum, [, w]) => sum + w, 0);
    let roll = rng.next() * total;
    let kind: FaultKind = "kill";
    for (const [k, w] of KINDS) {
      roll -= w;
      if (roll < 0) {
        kind = k;
        break;
      }
    }
    const services = free(SERVICES, (s) => `svc:${s}`);
    switch (kind) {
      case "kill":
        if (services.length > 0) killService(rng.pick(services));
        return;
      case "nats":
        if (!busy.has("nats")) killNats(rng.pick(targets.nats.nodes));
        return;
      case "postgres":
        if (!busy.has("postgres")) crashPostgres();
        return;
      case "pause": {
        const choices: Array<() => void> = services.map(
          (s) => () =>
            pause(s, `svc:${s}`, async () => {
              const child = targets.system.processes.get(s)?.child;
              return child && child.exitCode === null && child.signalCode === null ? child.pid : undefined;
            }),
        );
        if (!busy.has("nats"))
          for (const node of targets.nats.nodes)
            choices.push(() => pause(node.name, "nats", async () => node.pid()));
        if (!busy.has("postgres"))
          choices.push(() => pause("postgres", "postgres", () => targets.postgres.pid()));
        if (choices.length > 0) rng.pick(choices)();
        return;
      }
    }
  }

  const done = (async () => {
    const end = opts.startedAt + opts.durationMs;
    while (!ending.signal.aborted) {
      await sleep(rng.int(1_500, 4_500), ending.signal);
      if (ending.signal.aborted || Date.now() >= end) break;
      next();
    }
    // Let every fault end (targets back, processes continued) before the period is over.
    while (inProgress.size > 0) await Promise.all([...inProgress]);
  })();

  return {
    records,
    done,
    async stop() {
      ending.abort();
      await done;
    },
  };
}
