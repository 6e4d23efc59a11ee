/**
 * A fuzz run against a running Mikrom: requests drawn from the gateway's own OpenAPI document
 * (requests.ts), sent as an anonymous caller, as a real user, as the superuser and with broken
 * credentials, each answer checked as it comes; then, once the system has settled, every VM whose
 * create was answered 201/202 is looked for, and the dead-letter stream is read.
 */
import { Header, type Names, names } from "@mikrom/contracts";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import fc from "fast-check";
import { exchange, type RawOutcome, requestBytes } from "./raw-http.ts";
import { type Caller, type FuzzRequest, type OpenApiDocument, requestArbitrary } from "./requests.ts";

export interface FuzzOptions {
  api: string;
  natsUrl: string;
  namespace: string;
  superuser: { email: string; password: string };
  runs: number;
  seed: number;
  /** Requests in flight at once. */
  concurrency: number;
}

export interface FuzzReport {
  requests: number;
  /** Answers by status (and `held` for a wait or an event stream still open at the deadline). */
  statuses: Map<string, number>;
  /** 5xx answers other than 503 with Retry-After and the documented 501. */
  serverErrors: string[];
  /** Error answers that are not RFC 9457 problem+json, or no answer at all. */
  notProblems: string[];
  /** Creates answered 201/202 whose VM cannot be found once the system settled. */
  lostCreates: string[];
  /** What the dead-letter stream holds after the run: subject and reason each. */
  deadLetters: string[];
  createsAccepted: number;
  summary: string;
}

/** How long a request may take; a `/wait` or an event stream is held longer on purpose. */
const DEADLINE_MS = 30_000;
const HELD_MS = 3_000;
const HELD = /\/wait$|^GET \/api\/v1\/events\/vms$/;

export async function fuzz(options: FuzzOptions): Promise<FuzzReport> {
  const { api } = options;
  const doc = (await (await fetch(`${api}/openapi.json`)).json()) as OpenApiDocument;
  const requests = fc.sample(requestArbitrary(doc), { numRuns: options.runs, seed: options.seed });
  const callers = await Callers.open(api, options.superuser);
  const known = new Known(callers);
  await known.load(api);

  const statuses = new Map<string, number>();
  const serverErrors: string[] = [];
  const notProblems: string[] = [];
  const count = (key: string): void => {
    statuses.set(key, (statuses.get(key) ?? 0) + 1);
  };

  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < requests.length) {
      const request = requests[next++]!;
      const resolved = known.resolve(request);
      const { target, headers } = resolved;
      const bytes = request.raw ?? requestBytes(request.method, target, headers, request.body);
      const held = HELD.test(request.operation);
      const outcome = await exchange(api, bytes, held ? HELD_MS : DEADLINE_MS);
      const what = `${request.method} ${target.slice(0, 200)} (${request.caller}; ${request.operation})`;
      const verdict = judge(outcome, request, held);
      count(verdict.key);
      if (verdict.serverError) serverErrors.push(`${what} -> ${verdict.serverError}`);
      if (verdict.notProblem) notProblems.push(`${what} -> ${verdict.notProblem}`);
      if (outcome.kind === "answer") await known.learn(request, resolved, outcome.answer);
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  const sentIn = (performance.now() - started) / 1000;

  const lostCreates = await known.lostCreates(api);
  const deadLetters = await readDeadLetters(options.natsUrl, names(options.namespace));
  const spread = [...statuses].sort(([a], [b]) => a.localeCompare(b)).map(([k, n]) => `${k}: ${n}`);
  const summary =
    `fuzz: ${requests.length} requests in ${sentIn.toFixed(1)} s (seed ${options.seed}); ${spread.join(", ")}; ` +
    `5xx: ${serverErrors.length}; not problem+json: ${notProblems.length}; ` +
    `creates accepted: ${known.creates.size}, lost: ${lostCreates.length}; dead letters: ${deadLetters.length}`;
  return {
    requests: requests.length,
    statuses,
    serverErrors,
    notProblems,
    lostCreates,
    deadLetters,
    createsAccepted: known.creates.size,
    summary,
  };
}

interface Verdict {
  key: string;
  serverError?: string;
  notProblem?: string;
}

/** One answer against the promises: no 5xx but the documented ones, every error problem+json. */
function judge(outcome: RawOutcome, request: FuzzRequest, held: boolean): Verdict {
  if (outcome.kind === "timeout") {
    if (held && outcome.status === undefined) return { key: "held" };
    if (held && outcome.status === 200) return { key: "200" };
    return { key: "no answer", notProblem: `no answer within ${DEADLINE_MS} ms` };
  }
  if (outcome.kind === "closed") {
    return { key: "closed", notProblem: `connection closed without an answer ${outcome.error ?? ""}` };
  }
  const { status, headers, body } = outcome.answer;
  const verdict: Verdict = { key: String(status) };
  const text = body.toString("utf8").slice(0, 300);
  const documented =
    (status === 503 && headers.has("retry-after")) ||
    (status === 501 && request.operation === "POST /api/v1/vms/build");
  if (status >= 500 && !documented) verdict.serverError = `${status} ${text}`;
  if (status >= 400) {
    const type = headers.get("content-type") ?? "";
    if (!type.startsWith("application/problem+json")) verdict.notProblem = `${status} ${type} ${text}`;
    else if (request.method !== "HEAD") {
      const problem = parseJson(body);
      if (
        !problem ||
        problem.status !== status ||
        typeof problem.detail !== "string" ||
        problem.error !== problem.detail
      )
        verdict.notProblem = `${status} not a problem document: ${text}`;
    }
  }
  return verdict;
}

// biome-ignore lint/suspicious/noExplicitAny: answers of every route, read field by field
type Json = any;

function parseJson(body: Buffer): Json {
  try {
    return JSON.parse(body.toString("utf8"));
  } catch {
    return undefined;
  }
}

/** A signed-in account the fuzz speaks as; signed in again, or replaced, when the fuzz ends its sessions. */
interface Identity {
  id: number;
  access: string;
  refresh: string;
}

/**
 * The fuzz's user and superuser. Its own requests may log them out, change their password,
 * deactivate or delete the user: a 401 to one of them signs it in again, or registers a new user.
 */
class Callers {
  private renewing: Promise<void> | undefined;
  private generation = 0;

  private readonly api: string;
  private readonly superuserLogin: { email: string; password: string };
  user: Identity;
  superuser: Identity;

  private constructor(
    api: string,
    superuserLogin: { email: string; password: string },
    user: Identity,
    superuser: Identity,
  ) {
    this.api = api;
    this.superuserLogin = superuserLogin;
    this.user = user;
    this.superuser = superuser;
  }

  static async open(api: string, superuser: { email: string; password: string }): Promise<Callers> {
    return new Callers(api, superuser, await registered(api, 0), await signedIn(api, superuser));
  }

  identity(caller: Caller): Identity | undefined {
    return caller === "user" || caller === "refresh-as-access" || caller === "bad-token"
      ? this.user
      : caller === "superuser"
        ? this.superuser
        : undefined;
  }

  /** Signs both in again (once for all the requests that saw the same 401). */
  renew(): Promise<void> {
    this.renewing ??= (async () => {
      this.superuser = await signedIn(this.api, this.superuserLogin);
      this.user = await signedIn(this.api, this.userLogin()).catch(() =>
        registered(this.api, ++this.generation),
      );
    })().finally(() => {
      this.renewing = undefined;
    });
    return this.renewing;
  }

  private userLogin(): { email: string; password: string } {
    return credentials(this.generation);
  }
}

function credentials(generation: number): { email: string; password: string } {
  return { email: `fuzz-${generation}@fuzz.mikrom`, password: "fuzz-password-1" };
}

async function registered(api: string, generation: number): Promise<Identity> {
  const who = credentials(generation);
  const res = await post(api, "/api/v1/auth/register", { ...who, name: "Fuzz" });
  if (res.status !== 201) throw new Error(`register ${who.email}: ${res.status} ${JSON.stringify(res.body)}`);
  return signedIn(api, who);
}

async function signedIn(api: string, who: { email: string; password: string }): Promise<Identity> {
  const res = await post(api, "/api/v1/auth/login/json", { username: who.email, password: who.password });
  if (res.status !== 200) throw new Error(`login ${who.email}: ${res.status} ${JSON.stringify(res.body)}`);
  const me = await get(api, "/api/v1/auth/me", res.body.access_token);
  return { id: me.body.id, access: res.body.access_token, refresh: res.body.refresh_token };
}

async function post(api: string, path: string, body: unknown): Promise<{ status: number; body: Json }> {
  const bytes = Buffer.from(JSON.stringify(body));
  return call(api, requestBytes("POST", path, [["Content-Type", "application/json"]], bytes));
}

async function get(api: string, path: string, token: string): Promise<{ status: number; body: Json }> {
  return call(api, requestBytes("GET", path, [["Authorization", `Bearer ${token}`]]));
}

/** The fuzz's own requests (signing in, reading back), over the same client as the fuzzed ones. */
async function call(api: string, request: Buffer): Promise<{ status: number; body: Json }> {
  const outcome = await exchange(api, request, DEADLINE_MS);
  if (outcome.kind !== "answer")
    throw new Error(`${request.toString("latin1", 0, 60)}: ${outcome.kind} ${JSON.stringify(outcome)}`);
  return { status: outcome.answer.status, body: parseJson(outcome.answer.body) };
}

interface Resolved {
  target: string;
  /** Each path parameter as sent. */
  params: Record<string, string>;
  headers: Array<readonly [string, string]>;
  identity?: Identity;
}

interface Create {
  vmId: string;
  owner: number;
  /** A delete of it (or of its owner) was accepted: it may be gone. */
  deleted: boolean;
}

/** The ids the run has seen (VMs, pools, users), and every create it was answered 201/202. */
class Known {
  readonly creates = new Map<string, Create>();
  private readonly ids: Record<"vm_id" | "pool_id" | "user_id", string[]> = {
    vm_id: [],
    pool_id: [],
    user_id: [],
  };

  private readonly callers: Callers;

  constructor(callers: Callers) {
    this.callers = callers;
  }

  async load(api: string): Promise<void> {
    const pools = await get(api, "/api/v1/ippools", this.callers.superuser.access);
    for (const pool of pools.body.items) this.ids.pool_id.push(pool.id);
    this.ids.user_id.push(String(this.callers.user.id), String(this.callers.superuser.id));
  }

  /** The request's target and headers, with the known ids and the caller's credentials filled in. */
  resolve(request: FuzzRequest): Resolved {
    const params: Record<string, string> = {};
    const target = request.template.replace(/\{(\w+)\}/g, (_, name: string) => {
      const segment = request.segments[name];
      const ids = this.ids[name as keyof Known["ids"]] ?? [];
      params[name] =
        segment === undefined
          ? ""
          : "text" in segment
            ? segment.text
            : ids.length
              ? ids[segment.known % ids.length]!
              : "srv-00000000";
      return params[name];
    });
    const identity = this.callers.identity(request.caller);
    const token =
      request.caller === "refresh-as-access"
        ? identity?.refresh
        : request.caller === "bad-token"
          ? `${identity?.access}x`
          : request.caller === "no-token"
            ? ""
            : identity?.access;
    const auth = token === undefined ? [] : [["Authorization", `Bearer ${token}`] as const];
    return {
      target: `${target}${request.query}`,
      params,
      headers: [...auth, ...request.headers],
      ...(identity && { identity }),
    };
  }

  /** What an answer tells: a VM, pool or user made, a VM or user deleted, credentials ended. */
  async learn(
    request: FuzzRequest,
    { params, identity }: Resolved,
    answer: { status: number; body: Buffer },
  ): Promise<void> {
    const { status } = answer;
    if (status === 401 && identity && (request.caller === "user" || request.caller === "superuser")) {
      await this.callers.renew();
      return;
    }
    const body = status < 300 ? parseJson(answer.body) : undefined;
    // The route the request reached: its method may not be its operation's.
    switch (`${request.method} ${request.template} ${status}`) {
      case "POST /api/v1/vms 201":
      case "POST /api/v1/vms 202":
        this.ids.vm_id.push(body.vm_id);
        this.creates.set(body.vm_id, { vmId: body.vm_id, owner: identity?.id ?? -1, deleted: false });
        break;
      case "POST /api/v1/ippools 201":
      case "POST /api/v1/ippools 202":
        this.ids.pool_id.push(body.id);
        break;
      case "POST /api/v1/auth/register 201":
        this.ids.user_id.push(String(body.id));
        break;
      case "DELETE /api/v1/vms/{vm_id} 202": {
        const create = this.creates.get(params.vm_id ?? "");
        if (create) create.deleted = true;
        break;
      }
      case "DELETE /api/v1/users/{user_id} 204": {
        const userId = Number(params.user_id);
        for (const create of this.creates.values()) if (create.owner === userId) create.deleted = true;
        break;
      }
    }
  }

  /**
   * Every create answered 201/202 is a VM the superuser can read; one the fuzz then deleted (itself
   * or with its owner) may be gone, but vm-service recorded its creation (the audit log holds it).
   */
  async lostCreates(api: string): Promise<string[]> {
    await this.callers.renew();
    const lost: string[] = [];
    const token = (): string => this.callers.superuser.access;
    for (const create of this.creates.values()) {
      const res = await settled(() => get(api, `/api/v1/vms/${create.vmId}`, token()));
      if (res.status === 200) continue;
      if (!create.deleted) {
        lost.push(`${create.vmId}: GET answered ${res.status} ${JSON.stringify(res.body)}`);
        continue;
      }
      const audit = await settled(
        () => get(api, `/api/v1/audit?vm_id=${create.vmId}&type=VmCreated`, token()),
        (r) => r.status === 200 && r.body.items.length > 0,
      );
      if (audit.body.items?.length !== 1)
        lost.push(`${create.vmId}: deleted, and no VmCreated in the audit log`);
    }
    return lost;
  }
}

/** Retries a read while the system still settles (503, or `ok` not yet), for up to 30 s. */
async function settled<T extends { status: number }>(
  read: () => Promise<T>,
  ok: (r: T) => boolean = (r) => r.status !== 503,
): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const res = await read();
    if (ok(res) || Date.now() > deadline) return res;
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * Waits until the commands stream is drained (every command handled or given up on), then reads
 * what the dead-letter stream holds.
 */
async function readDeadLetters(natsUrl: string, n: Names): Promise<string[]> {
  const nc = await connect({ servers: natsUrl, noAsyncTraces: true, name: "fuzz dead letters" });
  try {
    const jsm = await jetstreamManager(nc);
    const deadline = Date.now() + 60_000;
    while ((await jsm.streams.info(n.streams.commands)).state.messages > 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 250));
    const info = await jsm.streams.info(n.streams.deadLetters).catch(() => undefined);
    const letters: string[] = [];
    for (let seq = info?.state.first_seq ?? 1; info && seq <= info.state.last_seq; seq++) {
      const m = await jsm.streams.getMessage(n.streams.deadLetters, { seq }).catch(() => null);
      if (m)
        letters.push(
          `${m.subject}: ${m.header?.get(Header.DeadLetterReason) ?? ""} ${m.string().slice(0, 200)}`,
        );
    }
    return letters;
  } finally {
    await nc.close();
  }
}
