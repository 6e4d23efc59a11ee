import { createRoute } from "@hono/zod-openapi";
import { GetVm, VM_SERVICE, type VmStatus } from "@mikrom/contracts";
import { streamSSE } from "hono/streaming";
import { z } from "zod";
import { signedIn } from "../auth/middleware.ts";
import type { Backend, EventFeed, FeedEvent } from "../backend.ts";
import type { GatewayApp } from "../http/env.ts";
import { validationProblem } from "../http/problem.ts";
import { BEARER, firstValues } from "../http/route-parts.ts";
import type { ConcurrencyCap } from "../limits/concurrency.ts";
import type { UserRow } from "../store/users.ts";
import { actorOf } from "./vms/schemas.ts";

export interface EventRouteDeps {
  readonly backend: Backend;
  readonly heartbeatMs: number;
  readonly queryTimeoutMs: number;
  /** Event streams one user may hold open at once. */
  readonly streams: ConcurrencyCap;
}

/** The status an event leaves the VM in, when it says (clients that only want status read this). */
const STATUS_AFTER: Readonly<Record<string, VmStatus>> = {
  VmCreated: "pending",
  VmProvisioning: "provisioning",
  VmRunning: "running",
  VmStartRequested: "starting",
  VmStopRequested: "stopping",
  VmStopped: "stopped",
  VmRestartRequested: "restarting",
  VmDeleteRequested: "deleting",
  VmFailed: "error",
};

/**
 * Events a client is not shown still move its resume point: an id-only block (no data) sets an
 * EventSource's Last-Event-ID without firing an event. Without it, a client that sees few of a busy
 * stream's events resumes from its last own one every time and replays the same growing gap.
 */
const SKIPPED_ID_EVERY = 256;

const LastEventId = z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional();
const EventsQuery = z.object({
  token: z.string().optional().describe("access token, for EventSource clients that cannot send headers"),
});

/**
 * Which VMs a caller may see events of. A VmCreated says the owner; a VM first met mid-life is
 * asked about once (GetVm as the caller answers not_found for another user's VM).
 */
function visibility(
  backend: Backend,
  user: UserRow,
  timeoutMs: number,
): (event: FeedEvent) => Promise<boolean> {
  if (user.is_superuser) return async () => true;
  const owned = new Map<string, boolean>();
  return async (event) => {
    if (event.type === "VmCreated") owned.set(event.entityId, event.data.userId === user.id);
    const known = owned.get(event.entityId);
    if (known !== undefined) return known;
    const reply = await backend.query(
      VM_SERVICE,
      GetVm,
      { vmId: event.entityId, actor: actorOf(user) },
      timeoutMs,
    );
    const mine = reply.ok && reply.data.userId === user.id;
    // "unavailable" is not an answer about ownership: ask again on the VM's next event.
    if (reply.ok || reply.error.code === "not_found" || reply.error.code === "forbidden")
      owned.set(event.entityId, mine);
    return mine;
  };
}

function lastEventId(raw: string | undefined): number | undefined {
  const parsed = LastEventId.safeParse(raw);
  if (parsed.success) return parsed.data;
  const message = "must be a stream sequence (a non-negative integer)";
  throw validationProblem([
    { field: "header.Last-Event-ID", message, loc: ["header", "Last-Event-ID"], type: "int_parsing" },
  ]);
}

export const vmEvents = createRoute({
  method: "get",
  path: "/api/v1/events/vms",
  summary:
    "Server-Sent Events of your VMs (a superuser: all). Each event's id is its stream sequence: send it back as Last-Event-ID to resume without a gap",
  tags: ["events"],
  middleware: signedIn,
  security: BEARER,
  request: { query: firstValues(EventsQuery) },
  responses: {
    200: { description: "text/event-stream", content: { "text/event-stream": { schema: z.string() } } },
  },
});

export function eventRoutes(app: GatewayApp, deps: EventRouteDeps): void {
  app.openapi(vmEvents, async (c) => {
    const user = c.get("user");
    const lastId = lastEventId(c.req.header("last-event-id") ?? c.req.query("last_event_id"));
    // The slot is given back when the feed stops, which every way out of the stream does.
    const release = await deps.streams.acquire(user.id);
    let opened: EventFeed;
    try {
      opened = await deps.backend.events({
        context: "vm",
        ...(lastId !== undefined && { afterSequence: lastId }),
      });
    } catch (error) {
      release();
      throw error;
    }
    const feed: EventFeed = {
      [Symbol.asyncIterator]: () => opened[Symbol.asyncIterator](),
      stop: () => opened.stop().finally(release),
    };
    const visible = visibility(deps.backend, user, deps.queryTimeoutMs);
    c.header("Cache-Control", "no-cache");
    c.header("X-Accel-Buffering", "no");
    return streamSSE(
      c,
      async (stream) => {
        stream.onAbort(() => {
          void feed.stop();
        });
        const heartbeat = setInterval(() => {
          void stream.write(": heartbeat\n\n").catch(() => feed.stop());
        }, deps.heartbeatMs);
        // The last id the client holds, and the newest event it was not shown (see SKIPPED_ID_EVERY).
        let written = lastId ?? 0;
        let skipped = 0;
        try {
          await stream.write(": connected\n\n");
          for await (const event of feed) {
            if (!(await visible(event))) {
              skipped = event.seq;
              if (skipped - written >= SKIPPED_ID_EVERY) {
                await stream.write(`id: ${skipped}\n\n`);
                written = skipped;
              }
              continue;
            }
            const status = STATUS_AFTER[event.type];
            const data = {
              vm_id: event.entityId,
              type: event.type,
              ...(status && { status }),
              data: event.data,
              timestamp: event.time,
            };
            await stream.writeSSE({ id: String(event.seq), data: JSON.stringify(data) });
            written = event.seq;
          }
          // The feed ended (the stream fell behind, or its reader failed): resume past all it read.
          if (skipped > written) await stream.write(`id: ${skipped}\n\n`);
        } finally {
          clearInterval(heartbeat);
          await feed.stop();
        }
      },
      async (_error, stream) => {
        await feed.stop();
        await stream.close();
      },
    );
  });
}
