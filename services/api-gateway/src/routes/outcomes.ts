import type { QueryReply } from "@mikrom/contracts";
import type { CommandOutcome } from "../backend.ts";
import { Problem } from "../http/problem.ts";

/**
 * Query errors and command refusals as HTTP. `forbidden` reads as 404: another user's VM must be
 * indistinguishable from one that does not exist.
 */
export function dataOf<T>(reply: QueryReply<T>, what: string): T {
  if (reply.ok) return reply.data;
  switch (reply.error.code) {
    case "not_found":
    case "forbidden":
      throw new Problem(404, `${what} not found`);
    case "invalid":
      throw new Problem(422, reply.error.message);
    case "unavailable":
      throw unavailable(what);
    default:
      throw new Problem(502, `The service answering for ${what} failed: ${reply.error.message}`);
  }
}

export type Settled = Exclude<CommandOutcome, { status: "rejected" }>;

/** Accepted or still pending; a refusal becomes its problem (409 with the service's reason). */
export function unlessRejected(outcome: CommandOutcome, what: string): Settled {
  if (outcome.status !== "rejected") return outcome;
  switch (outcome.code) {
    case "not_found":
    case "forbidden":
      throw new Problem(404, `${what} not found`);
    case "invalid":
      throw new Problem(422, outcome.reason);
    default:
      throw new Problem(409, outcome.reason);
  }
}

/** The service answering for `what` is away: retry later. */
export function unavailable(what: string): Problem {
  return new Problem(503, `The service answering for ${what} is unavailable; retry later`, {
    headers: { "Retry-After": "1" },
  });
}
