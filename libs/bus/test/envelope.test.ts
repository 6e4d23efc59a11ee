import { Header, ValidationFailed } from "@mikrom/contracts";
import { headers } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { decode, type Received } from "../src/envelope.ts";
import { copyHeaders, headerSafe } from "../src/headers.ts";
import { DoWork, registry } from "./support.ts";

function received(body: string, set: Record<string, string>): Received {
  const h = headers();
  for (const [k, v] of Object.entries(set)) h.set(k, v);
  return {
    subject: "ns.cmd.work.do",
    data: new TextEncoder().encode(body),
    headers: h,
    stream: "NS_COMMANDS",
    streamSequence: 42,
    deliveryCount: 2,
  };
}

function reasonOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationFailed);
    return (error as Error).message;
  }
  throw new Error("expected a ValidationFailed");
}

describe("decode", () => {
  it("gives the handler the typed data, the ids from the headers and the delivery", () => {
    const envelope = decode(
      received(JSON.stringify({ n: 3 }), {
        [Header.Type]: "DoWork",
        [Header.SchemaVersion]: "1",
        [Header.MsgId]: "cmd-3",
        [Header.CorrelationId]: "req-1",
        [Header.CausationId]: "evt-9",
      }),
      registry,
    );
    expect(envelope).toMatchObject({
      type: "DoWork",
      data: { n: 3 },
      subject: "ns.cmd.work.do",
      messageId: "cmd-3",
      correlationId: "req-1",
      causationId: "evt-9",
      deliveryCount: 2,
      streamSequence: 42,
    });
  });

  it("falls back to stream and sequence for the message id, and leaves absent ids undefined", () => {
    const envelope = decode(received(JSON.stringify({ n: 3 }), { [Header.Type]: "DoWork" }), registry);
    expect(envelope.messageId).toBe("NS_COMMANDS:42");
    expect(envelope.correlationId).toBeUndefined();
    expect(envelope.causationId).toBeUndefined();
  });

  it.each([
    ["no type header", JSON.stringify({ n: 1 }), {}, /missing Mikrom-Type header/],
    ["an unknown type", JSON.stringify({ n: 1 }), { [Header.Type]: "Nope" }, /unknown message type Nope/],
    [
      "another schema version",
      JSON.stringify({ n: 1 }),
      { [Header.Type]: "DoWork", [Header.SchemaVersion]: "2" },
      /schema version 2 is not handled here/,
    ],
    ["a body that is not JSON", "{", { [Header.Type]: "DoWork" }, /body is not valid JSON/],
    [
      "data that breaks the schema",
      JSON.stringify({ n: -1 }),
      { [Header.Type]: DoWork.type },
      /^DoWork is invalid: n: /,
    ],
  ])("refuses %s, saying so", (_what, body, set, reason) => {
    expect(reasonOf(() => decode(received(body, set as Record<string, string>), registry))).toMatch(reason);
  });
});

describe("headers", () => {
  it("copies headers from nats.js or a plain record without sharing them with the caller", () => {
    const original = headers();
    original.append("X-Many", "1");
    original.append("X-Many", "2");
    const copy = copyHeaders(original);
    copy.set("X-New", "yes");
    expect(copy.values("X-Many")).toEqual(["1", "2"]);
    expect(original.has("X-New")).toBe(false);
    expect(copyHeaders({ traceparent: "00-abc" }).get("traceparent")).toBe("00-abc");
  });

  it("makes free text safe for a header value: one line, bounded", () => {
    expect(headerSafe("Error: boom\n    at handler (x.ts:1)\r\n")).toBe("Error: boom at handler (x.ts:1)");
    const long = headerSafe("x".repeat(5_000));
    expect(long).toHaveLength(1024);
    expect(long.endsWith("…")).toBe(true);
  });
});
