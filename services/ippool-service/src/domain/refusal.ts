import type { PoolIssue } from "./validation.ts";

/** Why a command was not carried out; `code` maps to the gateway's HTTP status (422, 409, 404). */
export interface Refusal {
  readonly refused: true;
  readonly code: "invalid" | "conflict" | "not_found";
  readonly reason: string;
  readonly issues: readonly PoolIssue[];
}

export function refuse(code: Refusal["code"], reason: string, issues: readonly PoolIssue[] = []): Refusal {
  return { refused: true, code, reason, issues };
}

export function isRefusal(value: unknown): value is Refusal {
  return typeof value === "object" && value !== null && (value as { refused?: unknown }).refused === true;
}
