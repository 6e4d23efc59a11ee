import { captureLogs } from "@mikrom/testkit";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createLogger, errorFields, setLogDestination } from "../src/index.ts";

/**
 * Every field that can carry a secret through Mikrom, logged through the shared logger the way a
 * careless line would log it: the secret's value must never reach the output, wherever it sits.
 */
const SECRET = "s3cr3t-VALUE-0123456789abcdef";
/** A JWT's shape: header.payload.signature, each base64url (what access, refresh and console cookies hold). */
const JWT =
  "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI0MiIsInR5cGUiOiJhY2Nlc3MifQ.c2lnbmF0dXJlLXZhbHVlLTAxMjM";

/** Fields by name: request bodies, configuration, headers. */
const SECRET_KEYS = [
  "password",
  "currentPassword",
  "current_password",
  "newPassword",
  "new_password",
  "token",
  "accessToken",
  "access_token",
  "refreshToken",
  "refresh_token",
  "authorization",
  "Authorization",
  "cookie",
  "Cookie",
  "set-cookie",
  "invite",
  "invite_token",
  "inviteToken",
  "invitation",
  "csrf",
  "_csrf",
  "JWT_SECRET",
  "jwtSecret",
  "MIKROM_ADMIN_PASSWORD",
  "hashed_password",
  "token_hash",
];

/** Secrets inside text whose key says nothing: URLs, header lines, messages. */
const SECRET_TEXTS: Array<[string, string, string]> = [
  ["a database URL's password", "DATABASE_URL", `postgres://mikrom:${SECRET}@db:5432/mikrom`],
  ["a NATS URL's password", "NATS_URL", `nats://gateway:${SECRET}@nats:4222`],
  ["a bearer header line", "header", `Authorization: Bearer ${JWT}`],
  ["a token in a query string", "url", `/api/v1/events/vms?token=${JWT}&since=1`],
  ["a secret query parameter", "url", `/api/v1/auth/register?invite_token=${SECRET}`],
  ["the console's cookies", "line", `mikrom_access=${JWT}; mikrom_refresh=${SECRET}; mikrom_csrf=${SECRET}`],
  ["a JWT in an error message", "reason", `refused token ${JWT} for user 42`],
];

let captured: ReturnType<typeof captureLogs>;
beforeEach(() => {
  captured = captureLogs();
  setLogDestination(captured);
});
afterEach(() => setLogDestination(undefined));

const log = createLogger("mikrom.test.secrets");
const output = (): string => JSON.stringify(captured.lines);

describe("secrets never reach the log", () => {
  it.each(SECRET_KEYS)("%s, at the top, nested in a body and in a headers object", (key) => {
    log.info({ [key]: SECRET }, "top");
    log.info({ body: { user: { [key]: SECRET } } }, "nested");
    log.info({ headers: { [key]: JWT } }, "headers");
    log.info({ items: [{ [key]: SECRET }] }, "in an array");
    expect(captured.lines).toHaveLength(4);
    expect(output()).not.toContain(SECRET);
    expect(output()).not.toContain(JWT);
  });

  it.each(SECRET_TEXTS)("%s", (_what, key, text) => {
    log.info({ [key]: text }, "field");
    log.info({ raw: [key, text] }, "raw header pairs");
    log.warn(`message: ${text}`);
    log.error(errorFields(new Error(`failed: ${text}`)), "error");
    expect(captured.lines).toHaveLength(4);
    expect(output()).not.toContain(SECRET);
    expect(output()).not.toContain(JWT);
  });

  it("what is not a secret is kept as it was", () => {
    log.info({ vm_id: "srv-01020304", url: "/api/v1/vms?page=2&status=running", user_name: "ana" }, "kept");
    expect(captured.lines[0]).toMatchObject({
      vm_id: "srv-01020304",
      url: "/api/v1/vms?page=2&status=running",
      user_name: "ana",
    });
  });
});
