import { describe, expect, it } from "vitest";
import { detached, getContext, setContext, withContext } from "../src/index.ts";

describe("LogContext", () => {
  it("is empty outside any scope, and setContext there changes nothing", () => {
    setContext({ user_id: "u-1" });
    expect(getContext()).toEqual({});
  });

  it("merges a nested scope's fields over its parent's without changing the parent", () => {
    withContext({ request_id: "r-1", user_id: "u-1" }, () => {
      withContext({ vm_id: "srv-00000001", user_id: undefined }, () => {
        expect(getContext()).toEqual({ request_id: "r-1", user_id: "u-1", vm_id: "srv-00000001" });
      });
      expect(getContext()).toEqual({ request_id: "r-1", user_id: "u-1" });
    });
  });

  it("follows async work, and setContext adds to the scope for what runs later in it", async () => {
    await withContext({ request_id: "r-2" }, async () => {
      await Promise.resolve();
      setContext({ user_id: "u-2", user_name: "ada" });
      await new Promise<void>((resolve) => setImmediate(resolve));
      expect(getContext()).toEqual({ request_id: "r-2", user_id: "u-2", user_name: "ada" });
    });
    expect(getContext()).toEqual({});
  });

  it("keeps concurrent scopes apart", async () => {
    const seen = await Promise.all(
      ["a", "b", "c"].map((id) =>
        withContext({ request_id: id }, async () => {
          await new Promise<void>((resolve) => setTimeout(resolve, 1));
          return getContext().request_id;
        }),
      ),
    );
    expect(seen).toEqual(["a", "b", "c"]);
  });

  it("detached work carries none of its starter's fields, now or after an await", async () => {
    const seen = await withContext({ request_id: "r-3", user_id: "u-3" }, () =>
      detached(async () => {
        const first = getContext();
        await new Promise<void>((resolve) => setImmediate(resolve));
        return [first, getContext()];
      }),
    );
    expect(seen).toEqual([{}, {}]);
  });
});
