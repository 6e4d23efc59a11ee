/**
 * The chaos load: users over the REST API, each with workers looping random operations on the VMs
 * they created themselves, recording every answer. A create carries a fresh Idempotency-Key and a
 * name unique to that key, and is retried with the same key and body until a definitive answer (or
 * the load's end), so the checker can count the VMs one key made.
 */
import { type Answer, call, retryAfterMs } from "./http.ts";
import { type Random, sleep } from "./random.ts";

export interface ResponseRecord {
  /** When the request was sent, in ms since the run's load began. */
  readonly t: number;
  readonly ms: number;
  readonly user: number;
  readonly worker: number;
  readonly method: string;
  /** The route with its VM id as `:id`, e.g. `POST /vms/:id/stop`. */
  readonly route: string;
  readonly status: number;
  readonly retryAfter: boolean;
  readonly vmId?: string;
  readonly key?: string;
  /** The problem's detail, or why no answer came (status 0), for answers worth explaining. */
  readonly detail?: string;
}

export interface CreateRecord {
  readonly key: string;
  readonly name: string;
  readonly user: number;
  readonly worker: number;
  /** Every vm_id an answer to this key carried (201/202; a replay carries the first). */
  readonly vmIds: string[];
  /** `acked`: answered 201 or 202; `refused`: a definitive 4xx; `unresolved`: the load ended first. */
  outcome: "acked" | "refused" | "unresolved";
  attempts: number;
  lastStatus: number;
}

export interface LoadUser {
  readonly index: number;
  readonly email: string;
  readonly token: string;
}

export interface LoadRecord {
  readonly responses: ResponseRecord[];
  readonly creates: CreateRecord[];
}

export interface Load extends LoadRecord {
  /** Asks every worker to finish its current operation and stop; resolves when all have. */
  stop(): Promise<void>;
}

export interface LoadOptions {
  readonly api: string;
  readonly users: readonly LoadUser[];
  readonly workers: number;
  readonly rng: Random;
  readonly startedAt: number;
  readonly requestTimeoutMs: number;
  /** Aborts requests in flight (the run is being stopped by Ctrl-C). */
  readonly signal: AbortSignal;
}

/** Below this many VMs a worker creates more; above the second it deletes more often. */
const FEW = 2;
const MANY = 6;

type Op = "create" | "get" | "list" | "events" | "stop" | "start" | "restart" | "delete";
const WEIGHTS: ReadonlyArray<readonly [Op, number]> = [
  ["get", 20],
  ["events", 5],
  ["list", 5],
  ["stop", 15],
  ["start", 15],
  ["restart", 12],
  ["delete", 10],
  ["create", 18],
];

export function startLoad(opts: LoadOptions): Load {
  const responses: ResponseRecord[] = [];
  const creates: CreateRecord[] = [];
  let stopping = false;
  const stopped = (): boolean => stopping || opts.signal.aborted;

  function record(
    user: LoadUser,
    worker: number,
    method: string,
    route: string,
    sentAt: number,
    answer: Answer,
    extra: { vmId?: string; key?: string } = {},
  ): void {
    const explain = answer.status === 0 || answer.status >= 500 || answer.status === 404;
    const detail =
      answer.status === 0
        ? answer.error
        : explain
          ? String(answer.body?.detail ?? "").slice(0, 300)
          : undefined;
    responses.push({
      t: sentAt - opts.startedAt,
      ms: answer.ms,
      user: user.index,
      worker,
      method,
      route,
      status: answer.status,
      retryAfter: answer.retryAfter !== null,
      ...extra,
      ...(detail !== undefined && { detail }),
    });
  }

  async function send(
    user: LoadUser,
    worker: number,
    method: string,
    path: string,
    route: string,
    extra: { vmId?: string; key?: string; body?: unknown; headers?: Record<string, string> } = {},
  ): Promise<Answer> {
    const sentAt = Date.now();
    const answer = await call(opts.api, method, path, {
      token: user.token,
      body: extra.body,
      ...(extra.headers && { headers: extra.headers }),
      timeoutMs: opts.requestTimeoutMs,
      signal: opts.signal,
    });
    // An answer cut short by Ctrl-C says nothing about the system.
    if (!(answer.status === 0 && opts.signal.aborted)) {
      record(user, worker, method, route, sentAt, answer, {
        ...(extra.vmId && { vmId: extra.vmId }),
        ...(extra.key && { key: extra.key }),
      });
    }
    return answer;
  }

  /** After a 503 or 429, the hint (bounded); after no answer, a short pause. */
  async function backOff(answer: Answer, rng: Random): Promise<void> {
    if (
      answer.status === 503 ||
      answer.status === 429 ||
      (answer.status === 409 && answer.retryAfter !== null)
    )
      await sleep(retryAfterMs(answer.retryAfter, 1_000), opts.signal);
    else if (answer.status === 0 || answer.status >= 500) await sleep(rng.int(200, 800), opts.signal);
  }

  async function create(user: LoadUser, worker: number, n: number, rng: Random): Promise<string | undefined> {
    const key = `chaos-u${user.index}-w${worker}-n${n}`;
    const rec: CreateRecord = {
      key,
      name: `c-u${user.index}-w${worker}-n${n}`,
      user: user.index,
      worker,
      vmIds: [],
      outcome: "unresolved",
      attempts: 0,
      lastStatus: 0,
    };
    creates.push(rec);
    const body = { name: rec.name, vcpu_count: 1, memory_mb: 128 };
    for (;;) {
      rec.attempts += 1;
      const answer = await send(user, worker, "POST", "/api/v1/vms", "POST /vms", {
        key,
        body,
        headers: { "idempotency-key": key },
      });
      if (answer.status === 0 && opts.signal.aborted) return undefined;
      rec.lastStatus = answer.status;
      if (answer.status === 201 || answer.status === 202) {
        const vmId = String(answer.body?.vm_id ?? "");
        if (vmId && !rec.vmIds.includes(vmId)) rec.vmIds.push(vmId);
        rec.outcome = "acked";
        return vmId || undefined;
      }
      const inProgress = answer.status === 409 && /still in progress/i.test(String(answer.body?.detail));
      const retry = answer.status === 0 || answer.status >= 500 || answer.status === 429 || inProgress;
      if (!retry) {
        rec.outcome = "refused";
        return undefined;
      }
      if (stopped()) return undefined;
      await backOff(answer, rng);
      if (stopped()) return undefined;
    }
  }

  async function worker(user: LoadUser, index: number): Promise<void> {
    const rng = opts.rng.fork(`u${user.index}w${index}`);
    const vms: string[] = [];
    let n = 0;
    while (!stopped()) {
      const op = chooseOp(rng, vms.length);
      if (op === "create") {
        const vmId = await create(user, index, n++, rng);
        if (vmId) vms.push(vmId);
      } else if (op === "list") {
        const answer = await send(user, index, "GET", "/api/v1/vms?page_size=20", "GET /vms");
        await backOff(answer, rng);
      } else {
        const vmId = rng.pick(vms);
        const path = `/api/v1/vms/${vmId}`;
        const [method, suffix] =
          op === "get"
            ? ["GET", ""]
            : op === "events"
              ? ["GET", "/events"]
              : op === "delete"
                ? ["DELETE", ""]
                : ["POST", `/${op}`];
        const answer = await send(user, index, method, `${path}${suffix}`, `${method} /vms/:id${suffix}`, {
          vmId,
        });
        // Gone (deleted as asked, or a violation the checker counts): no more work on it.
        if (answer.status === 404 || (op === "delete" && answer.status === 202))
          vms.splice(vms.indexOf(vmId), 1);
        await backOff(answer, rng);
      }
      await sleep(rng.int(50, 300), opts.signal);
    }
  }

  const running = opts.users.flatMap((user) =>
    Array.from({ length: opts.workers }, (_, w) => worker(user, w)),
  );
  return {
    responses,
    creates,
    async stop() {
      stopping = true;
      await Promise.all(running);
    },
  };
}

function chooseOp(rng: Random, owned: number): Op {
  if (owned === 0) return "create";
  if (owned < FEW && rng.chance(0.5)) return "create";
  if (owned >= MANY && rng.chance(0.4)) return "delete";
  const total = WEIGHTS.reduce((sum, [, w]) => sum + w, 0);
  let roll = rng.next() * total;
  for (const [op, weight] of WEIGHTS) {
    roll -= weight;
    if (roll < 0) return op === "create" && owned >= MANY ? "get" : op;
  }
  return "get";
}
