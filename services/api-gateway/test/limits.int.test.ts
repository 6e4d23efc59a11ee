import { names } from "@mikrom/contracts";
import { openDatabase } from "@mikrom/runtime";
import { setLogDestination } from "@mikrom/telemetry";
import { captureLogs, describe, expect, type TestNats, test } from "@mikrom/testkit";
import { jetstreamManager } from "@nats-io/jetstream";
import { sql } from "kysely";
import type { GatewayDeps } from "../src/app.ts";
import { HeldRequests } from "../src/limits/concurrency.ts";
import { NatsBackend } from "../src/nats-backend.ts";
import type { GatewayDb } from "../src/store/db.ts";
import { migrate } from "../src/store/migrations.ts";
import { problemOf, type RunningGateway, startGateway, TEST_CONFIG } from "./support/gateway.ts";
import { openSse, type SseClient } from "./support/sse.ts";
import { world } from "./support/world.ts";

type Config = Partial<GatewayDeps["config"]>;
const rateLimit = (over: Partial<GatewayDeps["config"]["rateLimit"]>): Config => ({
  rateLimit: { ...TEST_CONFIG.rateLimit, ...over },
});
const login = (over: Partial<GatewayDeps["config"]["login"]>): Config => ({
  login: { ...TEST_CONFIG.login, ...over },
});

/** A 429 as every limit answers it: problem+json, with the seconds to wait. */
async function expectTooMany(res: Response): Promise<void> {
  const p = await problemOf(res);
  expect(p.status).toBe(429);
  expect(p.type).toContain("application/problem+json");
  expect(p.body.detail).toBe(p.body.error);
  expect(Number(res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
}

/** How many consumers the namespace's events stream has (an SSE stream must leave none behind). */
async function consumers(nats: TestNats): Promise<number> {
  const jsm = await jetstreamManager(nats.nc);
  let n = 0;
  for await (const _ of jsm.consumers.list(names(nats.namespace).streams.events)) n++;
  return n;
}

async function until(check: () => Promise<boolean>, what: string, deadlineMs = 15_000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${deadlineMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("limits shared by replicas", () => {
  test("two gateways over one database share the per-IP and per-user limits: N across both, not N each", async ({
    db,
  }) => {
    const config = rateLimit({ perIp: 6, perUser: 4 });
    const [one, two] = [await startGateway(db.url, { config }), await startGateway(db.url, { config })];
    try {
      const health = (gw: RunningGateway) =>
        gw.fetch("/health", { headers: { "X-Forwarded-For": "10.1.0.1" } });
      const statuses = [];
      for (let i = 0; i < 8; i++) statuses.push((await health(i % 2 ? two : one)).status);
      expect(statuses).toEqual([200, 200, 200, 200, 200, 200, 429, 429]);
      await expectTooMany(await health(one));

      const a = await one.user("a");
      const me = (gw: RunningGateway, i: number) =>
        gw.fetch("/api/v1/auth/me", { headers: { ...a.auth, "X-Forwarded-For": `10.1.1.${i}` } });
      const mine = [];
      for (let i = 0; i < 6; i++) mine.push((await me(i % 2 ? one : two, i)).status);
      expect(mine).toEqual([200, 200, 200, 200, 429, 429]);
    } finally {
      await one.close();
      await two.close();
    }
  });
});

describe("held requests across replicas", () => {
  test("a user's event streams are capped across two gateways: N in all, not N on each", async ({
    db,
    nats,
  }) => {
    const w = await world(db.url, nats, { concurrency: { ssePerUser: 2, waitsPerUser: 100 } });
    const two = await startGateway(db.url, {
      backend: await NatsBackend.create(nats.nc, nats.namespace),
      config: { concurrency: { ssePerUser: 2, waitsPerUser: 100 } },
    });
    const open: SseClient[] = [];
    try {
      open.push(await openSse(`${w.gw.url}/api/v1/events/vms`, w.a.auth));
      open.push(await openSse(`${two.url}/api/v1/events/vms`, w.a.auth));
      expect(open.map((sse) => sse.status)).toEqual([200, 200]);
      await expectTooMany(await two.fetch("/api/v1/events/vms", { headers: w.a.auth }));
      await expectTooMany(await w.gw.fetch("/api/v1/events/vms", { headers: w.a.auth }));
      // Closed on one replica, the slot is free on the other.
      open.shift()!.close();
      await until(async () => {
        const again = await openSse(`${two.url}/api/v1/events/vms`, w.a.auth);
        if (again.status === 200) open.push(again);
        else again.close();
        return again.status === 200;
      }, "the slot freed on the first gateway, taken on the second");
    } finally {
      for (const sse of open) sse.close();
      await two.close();
      await w.close();
    }
  });

  test("a replica that dies holding slots gives them back within a lease; a live one keeps its own", async ({
    db,
  }) => {
    const store = openDatabase<GatewayDb>(db.url, { max: 4 });
    await migrate(store);
    const doomed = openDatabase<GatewayDb>(db.url, { max: 2 });
    const dead = new HeldRequests(doomed, { leaseMs: 600 });
    const live = new HeldRequests(store, { leaseMs: 600 });
    try {
      const held: Array<() => void> = await Promise.all([
        dead.cap("waits", 3, 1).acquire(7),
        dead.cap("waits", 3, 1).acquire(7),
        live.cap("waits", 3, 1).acquire(7),
      ]);
      await expect(live.cap("waits", 3, 1).acquire(7)).rejects.toMatchObject({ status: 429 });
      // `dead` reaches the database no more, as a killed process would; `live` goes on renewing.
      await doomed.destroy();
      await until(async () => {
        const taken = await live
          .cap("waits", 3, 1)
          .acquire(7)
          .catch(() => undefined);
        if (taken) held.push(taken);
        return held.length === 5;
      }, "both of the dead replica's slots back");
      await expect(live.cap("waits", 3, 1).acquire(7)).rejects.toMatchObject({ status: 429 });
      // Another user has slots of their own.
      held.push(await live.cap("waits", 3, 1).acquire(8));
      for (const release of held) release();
    } finally {
      await Promise.all([dead.releaseAll(), live.releaseAll()]);
      await store.destroy();
    }
  });
});

describe("held requests when the database refuses", () => {
  test("a slot whose give-back failed is not kept alive by its replica's renewals: it comes back within a lease", async ({
    db,
  }) => {
    const store = openDatabase<GatewayDb>(db.url, { max: 4 });
    await migrate(store);
    const replica = new HeldRequests(store, { leaseMs: 600 });
    const waits = replica.cap("waits", 1, 1);
    try {
      // The replica goes on holding another user's slot, so its renewals keep running.
      const other = await waits.acquire(10);
      const release = await waits.acquire(9);
      await expect(waits.acquire(9)).rejects.toMatchObject({ status: 429 });
      // PostgreSQL refuses the give-back, as a database that fails mid-request would.
      await sql`
        CREATE FUNCTION refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'refused for the test'; END $$`.execute(store);
      await sql`CREATE TRIGGER refuse BEFORE DELETE ON held_requests FOR EACH ROW EXECUTE FUNCTION refuse_delete()`.execute(
        store,
      );
      release();
      let again: (() => void) | undefined;
      await until(async () => {
        again = await waits.acquire(9).catch(() => undefined);
        return again !== undefined;
      }, "user 9's slot back after its lease");
      // The other user's slot, renewed all along, is still held.
      await expect(waits.acquire(10)).rejects.toMatchObject({ status: 429 });
      await sql`DROP TRIGGER refuse ON held_requests`.execute(store);
      again?.();
      other();
    } finally {
      await replica.releaseAll();
      await store.destroy();
    }
  });
});

describe("login throttling", () => {
  test("300 wrong passwords against one account from 15 addresses end in 429s; the right one is refused while blocked", async ({
    db,
  }) => {
    const gw = await startGateway(db.url, {
      config: login({ freeFailuresPerAccount: 5, baseBlockSeconds: 60, maxBlockSeconds: 600 }),
    });
    try {
      const victim = await gw.user("victim");
      const attempt = (ip: string, password: string) =>
        gw.post("/api/v1/auth/login/json", { username: victim.email, password }, { "X-Forwarded-For": ip });
      const counts: Record<number, number> = {};
      // 20 rounds, each a guess from every one of the 15 addresses at once.
      for (let round = 0; round < 20; round++) {
        const answers = await Promise.all(
          Array.from({ length: 15 }, (_, i) => attempt(`10.2.0.${i + 1}`, `wrong-${round}-${i}`)),
        );
        for (const res of answers) {
          counts[res.status] = (counts[res.status] ?? 0) + 1;
          await res.body?.cancel();
        }
      }
      // Only the guesses that raced the first block were checked at all.
      expect(counts[401]).toBeLessThanOrEqual(20);
      expect(counts[429]).toBeGreaterThanOrEqual(280);
      expect(Object.keys(counts).sort()).toEqual(["401", "429"]);
      await expectTooMany(await attempt("10.2.0.99", "correct horse battery"));
      // The same account by its other names is not a way around: by email in capitals, by username.
      await expectTooMany(
        await gw.post("/api/v1/auth/login", { email: victim.email.toUpperCase(), password: "x" }),
      );
      await expectTooMany(
        await gw.post("/api/v1/auth/login/json", { username: victim.username, password: "x" }),
      );
    } finally {
      await gw.close();
    }
  }, 120_000);

  test("each failure past the free ones blocks longer; a success resets the account's count", async ({
    db,
  }) => {
    const gw = await startGateway(db.url, {
      config: login({ freeFailuresPerAccount: 3, baseBlockSeconds: 1, maxBlockSeconds: 600 }),
    });
    try {
      const user = await gw.user("backoff");
      const attempt = (password: string) =>
        gw.post("/api/v1/auth/login/json", { username: user.email, password });
      // Two failures, then the right password: the count starts again, so three more are free.
      expect((await attempt("wrong")).status).toBe(401);
      expect((await attempt("wrong")).status).toBe(401);
      expect((await attempt("correct horse battery")).status).toBe(200);
      for (let i = 0; i < 3; i++) expect((await attempt("wrong")).status).toBe(401);
      // The fourth failure in a row blocks the account for 1 s …
      expect((await attempt("wrong")).status).toBe(401);
      const first = await attempt("correct horse battery");
      await expectTooMany(first);
      expect(Number(first.headers.get("retry-after"))).toBe(1);
      await new Promise((r) => setTimeout(r, 1_100));
      // … the fifth for 2 s, and so on.
      expect((await attempt("wrong")).status).toBe(401);
      const second = await attempt("wrong");
      await expectTooMany(second);
      expect(Number(second.headers.get("retry-after"))).toBe(2);
    } finally {
      await gw.close();
    }
  });

  test("one address guessing many accounts is blocked, and other addresses are not", async ({ db }) => {
    const gw = await startGateway(db.url, { config: login({ freeFailuresPerIp: 3, baseBlockSeconds: 60 }) });
    try {
      const from = (ip: string, i: number) =>
        gw.post(
          "/api/v1/auth/login/json",
          { username: `someone-${i}@example.com`, password: "guess" },
          { "X-Forwarded-For": ip },
        );
      const statuses = [];
      for (let i = 0; i < 6; i++) statuses.push((await from("10.3.0.1", i)).status);
      expect(statuses).toEqual([401, 401, 401, 401, 429, 429]);
      expect((await from("10.3.0.2", 99)).status).toBe(401);
    } finally {
      await gw.close();
    }
  });
});

describe("client address", () => {
  test("without trusted proxies X-Forwarded-For is ignored: a client cannot pick a fresh key per request", async ({
    db,
  }) => {
    const gw = await startGateway(db.url, { config: { ...rateLimit({ perIp: 3 }), trustProxy: [] } });
    try {
      const statuses = [];
      for (let i = 0; i < 5; i++)
        statuses.push((await gw.fetch("/health", { headers: { "X-Forwarded-For": `10.4.0.${i}` } })).status);
      expect(statuses).toEqual([200, 200, 200, 429, 429]);
    } finally {
      await gw.close();
    }
  });

  test("behind a trusted proxy the client is the nearest untrusted hop: a spoofed leftmost hop changes nothing", async ({
    db,
  }) => {
    const gw = await startGateway(db.url, {
      config: { ...rateLimit({ perIp: 3 }), trustProxy: ["loopback"] },
    });
    try {
      const via = (xff: string) => gw.fetch("/health", { headers: { "X-Forwarded-For": xff } });
      // The proxy (loopback) appends the address it saw; what the client wrote before it is noise.
      const statuses = [];
      for (let i = 0; i < 5; i++) statuses.push((await via(`1.2.3.${i}, 10.5.0.1`)).status);
      expect(statuses).toEqual([200, 200, 200, 429, 429]);
      // Another real client behind the same proxy has its own count.
      expect((await via("10.5.0.2")).status).toBe(200);
    } finally {
      await gw.close();
    }
  });

  test("the request log names the client the limits count: the socket without trusted proxies, the nearest untrusted hop behind one", async ({
    db,
  }) => {
    const logs = captureLogs();
    setLogDestination(logs);
    const direct = await startGateway(db.url, { config: { trustProxy: [] } });
    const proxied = await startGateway(db.url, { config: { trustProxy: ["loopback"] } });
    try {
      const forged = { "X-Forwarded-For": "1.2.3.4, 10.6.0.1" };
      await direct.fetch("/health", { headers: { ...forged, "X-Request-ID": "req-direct" } });
      await proxied.fetch("/health", { headers: { ...forged, "X-Request-ID": "req-proxied" } });
      const clientOf = (id: string) =>
        logs.lines.find((l) => l.request_id === id && l.message === "Request started")?.client_ip;
      expect(clientOf("req-direct")).toBe("127.0.0.1");
      expect(clientOf("req-proxied")).toBe("10.6.0.1");
    } finally {
      setLogDestination(undefined);
      await direct.close();
      await proxied.close();
    }
  });
});

describe("held requests", () => {
  test("a user's concurrent event streams are capped; closing one frees its slot", async ({ db, nats }) => {
    const w = await world(db.url, nats, { concurrency: { ssePerUser: 2, waitsPerUser: 100 } });
    const url = `${w.gw.url}/api/v1/events/vms`;
    const open = [await openSse(url, w.a.auth), await openSse(url, w.a.auth)];
    try {
      expect(open.map((s) => s.status)).toEqual([200, 200]);
      await expectTooMany(await w.gw.fetch("/api/v1/events/vms", { headers: w.a.auth }));
      // Another user is not held back by A's streams.
      const b = await openSse(url, w.b.auth);
      expect(b.status).toBe(200);
      b.close();
      open.shift()!.close();
      await until(async () => {
        const again = await openSse(url, w.a.auth);
        if (again.status === 200) open.push(again);
        else again.close();
        return again.status === 200;
      }, "a freed slot");
    } finally {
      for (const s of open) s.close();
      await w.close();
    }
  });

  test("a user's concurrent waits are capped; a wait that ends frees its slot", async ({ db, nats }) => {
    const w = await world(db.url, nats, { concurrency: { ssePerUser: 100, waitsPerUser: 2 } });
    try {
      const vm = await (await w.gw.post("/api/v1/vms", { name: "waited" }, w.a.auth)).json();
      const wait = (timeout: number) =>
        w.gw.fetch(`/api/v1/vms/${vm.vm_id}/wait?status=running&timeout=${timeout}`, { headers: w.a.auth });
      // Three at once against a cap of two: whichever came last is refused, the others are held.
      const three = [wait(20), wait(20), wait(20)];
      const refused = await Promise.race(
        three.map((p, n) =>
          p.then((res) => (res.status === 429 ? { res, n } : new Promise<never>(() => {}))),
        ),
      );
      await expectTooMany(refused.res);
      await w.vmService.transition(vm.vm_id, "VmRunning", "running", { hostId: "h1", ipAddress: "10.0.0.7" });
      const held = await Promise.all(three.filter((_, n) => n !== refused.n));
      for (const res of held) expect((await res.json()).reached).toBe(true);
      expect((await wait(0)).status).toBe(200);
    } finally {
      await w.close();
    }
  });

  test("an event stream leaves no NATS consumer behind when it closes", async ({ db, nats }) => {
    const w = await world(db.url, nats);
    try {
      const before = await consumers(nats);
      for (let i = 0; i < 10; i++) {
        const sse = await openSse(`${w.gw.url}/api/v1/events/vms`, w.a.auth);
        await sse.comment("connected");
        sse.close();
      }
      await until(async () => (await consumers(nats)) === before, `consumers back to ${before}`);
      expect(await consumers(nats)).toBe(before);
    } finally {
      await w.close();
    }
  });

  test("every event stream of a gateway shares one consumer: 40 open streams hold one, each sees its own user's events", async ({
    db,
    nats,
  }) => {
    const w = await world(db.url, nats, { concurrency: { ssePerUser: 100, waitsPerUser: 100 } });
    const url = `${w.gw.url}/api/v1/events/vms`;
    const streams = { a: [] as SseClient[], b: [] as SseClient[] };
    const before = await consumers(nats);
    try {
      for (let i = 0; i < 20; i++) {
        streams.a.push(await openSse(url, w.a.auth));
        streams.b.push(await openSse(url, w.b.auth));
      }
      await Promise.all([...streams.a, ...streams.b].map((sse) => sse.comment("connected")));
      expect(await consumers(nats)).toBe(before + 1);

      const vmA = await (await w.gw.post("/api/v1/vms", { name: "shared-a" }, w.a.auth)).json();
      const vmB = await (await w.gw.post("/api/v1/vms", { name: "shared-b" }, w.b.auth)).json();
      for (const [mine, vm] of [
        [streams.a, vmA],
        [streams.b, vmB],
      ] as const) {
        const firsts = await Promise.all(mine.map((sse) => sse.next()));
        expect(new Set(firsts.map((e) => JSON.parse(e.data).vm_id))).toEqual(new Set([vm.vm_id]));
      }
    } finally {
      for (const sse of [...streams.a, ...streams.b]) sse.close();
    }
    try {
      await until(async () => (await consumers(nats)) === before, "no consumer once every stream is closed");
    } finally {
      await w.close();
    }
  });

  test("a flood of event streams from one user is capped, leaves nothing behind, and holds no one else back", async ({
    db,
    nats,
  }) => {
    const w = await world(db.url, nats, { concurrency: { ssePerUser: 5, waitsPerUser: 100 } });
    const url = `${w.gw.url}/api/v1/events/vms`;
    try {
      const before = await consumers(nats);
      // 300 streams, 20 at a time, each closed as soon as it is answered: the way a reconnect loop
      // gone wrong, or an attacker, would hammer the endpoint.
      const statuses = new Map<number, number>();
      for (let round = 0; round < 15; round++) {
        const wave = await Promise.all(Array.from({ length: 20 }, () => openSse(url, w.a.auth)));
        for (const sse of wave) {
          statuses.set(sse.status, (statuses.get(sse.status) ?? 0) + 1);
          sse.close();
        }
      }
      expect([...statuses.keys()].sort()).toEqual([200, 429]);
      expect(statuses.get(200)! + statuses.get(429)!).toBe(300);
      // Another user streams and is answered meanwhile.
      const b = await openSse(url, w.b.auth);
      expect(b.status).toBe(200);
      await b.comment("connected");
      b.close();
      await until(async () => (await consumers(nats)) === before, `consumers back to ${before}`);
      // And the flooding user gets a stream again once theirs are closed.
      await until(async () => {
        const again = await openSse(url, w.a.auth);
        again.close();
        return again.status === 200;
      }, "a stream for the flooding user");
    } finally {
      await w.close();
    }
  });
});
