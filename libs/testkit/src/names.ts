import { randomBytes } from "node:crypto";

/**
 * Names of test-owned resources carry their creation time, so a later run can sweep what a
 * crashed run left behind without touching what a run going on beside it is using.
 */
const PREFIX = "mt";
const STALE_AFTER_MS = 2 * 60 * 60 * 1000;

export function uniqueName(): string {
  return `${PREFIX}_${Date.now().toString(36)}_${randomBytes(4).toString("hex")}`;
}

export function isStale(name: string, now = Date.now()): boolean {
  const match = /^mt_([0-9a-z]+)_[0-9a-f]{8}/i.exec(name);
  if (!match?.[1]) return false;
  return now - Number.parseInt(match[1], 36) > STALE_AFTER_MS;
}

export const TEST_NAME_PATTERN = `${PREFIX}_%`;
