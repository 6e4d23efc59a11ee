import { errors } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { describeStatus } from "../src/connection.ts";
import { QueryFailed } from "../src/query.ts";
import { nakDelayMs } from "../src/retry.ts";
import { isTransient } from "../src/unavailable.ts";

describe("retry delays after a handler failure", () => {
  it("grow with the delivery count and then stay at the last one", () => {
    const delays = [100, 1_000, 5_000];
    expect([1, 2, 3, 4, 9].map((n) => nakDelayMs(n, delays))).toEqual([100, 1_000, 5_000, 5_000, 5_000]);
    expect(nakDelayMs(1)).toBe(1_000);
    expect(nakDelayMs(3, [])).toBe(0);
  });
});

describe("transient errors", () => {
  it("are the ones a restarting server causes, not a closed connection", () => {
    expect(isTransient(new errors.TimeoutError())).toBe(true);
    expect(
      isTransient(new errors.RequestError("no responders", { cause: new errors.NoRespondersError("x") })),
    ).toBe(true);
    expect(isTransient(new errors.ClosedConnectionError())).toBe(false);
    expect(isTransient(new errors.DrainingConnectionError())).toBe(false);
    expect(isTransient(new Error("stream not found"))).toBe(false);
  });
});

describe("connection state", () => {
  it("is logged as a warning when lost and as information when back", () => {
    expect(describeStatus({ type: "disconnect", server: "127.0.0.1:4222" })).toMatchObject({
      level: "warn",
      fields: { server: "127.0.0.1:4222" },
    });
    expect(describeStatus({ type: "reconnect", server: "127.0.0.1:4222" })).toMatchObject({ level: "info" });
    expect(describeStatus({ type: "error", error: new Error("auth") })).toMatchObject({
      level: "error",
      fields: { error: "auth" },
    });
  });
});

describe("a query failure", () => {
  it("carries a contract error code, mapping the names handlers used before", () => {
    expect(new QueryFailed("forbidden", "no").code).toBe("forbidden");
    expect(new QueryFailed("NotFound", "gone").code).toBe("not_found");
    expect(new QueryFailed("ValidationFailed", "bad").code).toBe("invalid");
    expect(new QueryFailed("Weird", "?").code).toBe("internal");
  });
});
