import { createHash, randomBytes, randomUUID } from "node:crypto";

/**
 * What an `Idempotency-Key` decides. A retry of a request, whatever happened to the first attempt
 * (a crash, a timeout, a 503), can only reach what the first one reached: the same VM, the same
 * command id, which every consumer drops as a duplicate. Without a key, ids are random.
 */
function digest(...parts: readonly (string | number)[]): Buffer {
  return createHash("sha256").update(parts.join("\n")).digest();
}

/** `<prefix>-` and 8 hex digits (`srv-1a2b3c4d`, `pool-…`), derived from the caller and the key when there is one. */
export function entityIdFor(prefix: "srv" | "pool", userId: number, key: string | undefined): string {
  const bytes = key === undefined ? randomBytes(4) : digest(prefix, userId, key);
  return `${prefix}-${bytes.subarray(0, 4).toString("hex")}`;
}

/** A UUID (version 8: derived, never equal to a random v4) from the caller, the key and the request. */
export function commandIdFor(userId: number, key: string | undefined, request: string): string {
  if (key === undefined) return randomUUID();
  const b = digest("command", userId, key, request).subarray(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x80;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
