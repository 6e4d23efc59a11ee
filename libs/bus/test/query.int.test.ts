import { Header, names, query } from "@mikrom/contracts";
import { describe, expect, test } from "@mikrom/testkit";
import { beforeAll, onTestFinished } from "vitest";
import { z } from "zod";
import { callQuery, QueryFailed, querySpec, serveQuery } from "../src/index.ts";
import { captureLogs } from "./support.ts";

beforeAll(() => {
  captureLogs();
});

const GetThing = query(
  "get-thing",
  z.object({ id: z.string().regex(/^t-\d+$/) }),
  z.object({ id: z.string(), size: z.int().positive() }),
);

async function failure(promise: Promise<unknown>): Promise<QueryFailed> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(QueryFailed);
  return error as QueryFailed;
}

describe("queries", () => {
  test("are answered with validated data; a handler's error code and a broken response reach the caller", async ({
    nats,
  }) => {
    const spec = querySpec(names(nats.namespace), "things", GetThing);
    expect(spec.subject).toBe(`${nats.namespace}.qry.things.get-thing`);
    const seenTypes: string[] = [];
    const server = serveQuery(
      nats.nc,
      spec,
      async ({ id }, { headers }) => {
        seenTypes.push(headers?.get(Header.Type) ?? "");
        if (id === "t-404") throw new QueryFailed("not_found", `thing ${id} does not exist`);
        if (id === "t-0") return { id, size: 0 }; // breaks the response schema
        if (id === "t-500") throw new Error("database is on fire");
        return { id, size: 3 };
      },
      { queue: "things" },
    );
    onTestFinished(() => server.stop());

    expect(await callQuery(nats.nc, spec, { id: "t-1" })).toEqual({ id: "t-1", size: 3 });
    expect(seenTypes).toEqual(["get-thing"]);
    expect(await failure(callQuery(nats.nc, spec, { id: "t-404" }))).toMatchObject({
      code: "not_found",
      message: "thing t-404 does not exist",
    });
    const broken = await failure(callQuery(nats.nc, spec, { id: "t-0" }));
    expect(broken.code).toBe("internal");
    expect(broken.message).toMatch(/get-thing response is invalid: size: /);
    // An unexpected error's own words stay in the server's log: the caller learns where to look.
    const fire = await failure(callQuery(nats.nc, spec, { id: "t-500" }));
    expect(fire.code).toBe("internal");
    expect(fire.message).toMatch(/^get-thing failed inside the service that answers it; see the log/);
    expect(fire.message).not.toContain("fire");
  });

  test("answer unavailable, not internal, when the handler's database cannot be reached", async ({
    nats,
  }) => {
    const spec = querySpec(names(nats.namespace), "things", GetThing);
    const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5999"), { code: "ECONNREFUSED" });
    const shuttingDown = Object.assign(new Error("terminating connection due to administrator command"), {
      code: "57P01",
    });
    const server = serveQuery(
      nats.nc,
      spec,
      async ({ id }) => {
        if (id === "t-1") throw refused;
        if (id === "t-2") throw new Error("load failed", { cause: shuttingDown });
        throw new Error("Connection terminated unexpectedly");
      },
      { queue: "things" },
    );
    onTestFinished(() => server.stop());

    for (const id of ["t-1", "t-2", "t-3"]) {
      const away = await failure(callQuery(nats.nc, spec, { id }));
      expect(away.code, id).toBe("unavailable");
      expect(away.message, id).not.toMatch(/127\.0\.0\.1|ECONNREFUSED|administrator|terminated/);
    }
  });

  test("replies in the contract's QueryReply shape, and refuses an invalid request before and after sending", async ({
    nats,
  }) => {
    const spec = querySpec(names(nats.namespace), "things", GetThing);
    let calls = 0;
    const server = serveQuery(
      nats.nc,
      spec,
      async ({ id }) => {
        calls++;
        return { id, size: 1 };
      },
      { queue: "things" },
    );
    onTestFinished(() => server.stop());

    const good = await nats.nc.request(spec.subject, JSON.stringify({ id: "t-7" }), { timeout: 2_000 });
    expect(good.json()).toEqual({ ok: true, data: { id: "t-7", size: 1 } });
    const bad = await nats.nc.request(spec.subject, JSON.stringify({ id: 42 }), { timeout: 2_000 });
    expect(bad.json()).toMatchObject({
      ok: false,
      error: { code: "invalid", message: expect.stringMatching(/id: /) },
    });
    const notJson = await nats.nc.request(spec.subject, "{", { timeout: 2_000 });
    expect(notJson.json()).toMatchObject({ ok: false, error: { code: "invalid" } });
    expect((await failure(callQuery(nats.nc, spec, { id: "nope" }))).code).toBe("invalid");
    expect(calls).toBe(1);
  });

  test("are unavailable when nothing serves them, or when the answer comes too late", async ({ nats }) => {
    const spec = querySpec(names(nats.namespace), "things", GetThing);
    expect(await failure(callQuery(nats.nc, spec, { id: "t-1" }))).toMatchObject({
      code: "unavailable",
      message: expect.stringMatching(/nothing serves/),
    });

    let release!: () => void;
    const late = new Promise<void>((resolve) => {
      release = resolve;
    });
    const slow = serveQuery(
      nats.nc,
      spec,
      async ({ id }) => {
        await late;
        return { id, size: 1 };
      },
      {
        queue: "things",
      },
    );
    onTestFinished(() => {
      release();
      return slow.stop();
    });
    expect(await failure(callQuery(nats.nc, spec, { id: "t-1" }, { timeoutMs: 200 }))).toMatchObject({
      code: "unavailable",
      message: expect.stringMatching(/in time/),
    });
  });

  test("served by replicas in one queue group, are answered once each", async ({ nats }) => {
    const spec = querySpec(names(nats.namespace), "things", GetThing);
    const answered: string[] = [];
    const servers = ["a", "b"].map((replica) =>
      serveQuery(
        nats.nc,
        spec,
        async ({ id }) => {
          answered.push(`${replica}:${id}`);
          return { id, size: 1 };
        },
        {
          queue: "things",
        },
      ),
    );
    onTestFinished(async () => {
      await Promise.all(servers.map((s) => s.stop()));
    });
    for (let i = 0; i < 20; i++) await callQuery(nats.nc, spec, { id: `t-${i}` });
    expect(answered.map((a) => a.split(":")[1]).sort()).toEqual(
      Array.from({ length: 20 }, (_, i) => `t-${i}`).sort(),
    );
  });
});
