import { describe, expect, test } from "vitest";
import { credentialsFromUrls } from "../src/connection.ts";

describe("credentials in NATS_URL", () => {
  test("a URL without credentials is passed on as is", () => {
    expect(credentialsFromUrls("nats://127.0.0.1:4222")).toEqual({ servers: ["nats://127.0.0.1:4222"] });
  });

  test("user and password are taken out of the URL, percent-decoded", () => {
    expect(credentialsFromUrls("nats://vm-service:p%40ss:w@nats:4222")).toEqual({
      servers: ["nats://nats:4222"],
      user: "vm-service",
      pass: "p@ss:w",
    });
  });

  test("a comma-separated list of a cluster's servers shares one user", () => {
    expect(credentialsFromUrls("nats://a:b@n1:4222, nats://a:b@n2:4222,nats://n3:4222")).toEqual({
      servers: ["nats://n1:4222", "nats://n2:4222", "nats://n3:4222"],
      user: "a",
      pass: "b",
    });
  });

  test("two different users in one list are refused rather than guessed", () => {
    expect(() => credentialsFromUrls(["nats://a:b@n1:4222", "nats://c:d@n2:4222"])).toThrow(/different/);
  });
});
