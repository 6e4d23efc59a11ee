import { z } from "zod";
import { Actor, HostId, Timestamp } from "./ids.ts";
import { query } from "./message.ts";
import { DriverName } from "./provisioner.ts";

/** A host as vm-service's registry holds it: what it announced, when it was last heard from, what it holds. */
export const HostView = z.object({
  hostId: HostId,
  driver: DriverName,
  vcpus: z.int().positive(),
  memoryMb: z.int().positive(),
  /** `unreachable`: silent past the heartbeat timeout, or stopped; `lost`: unreachable past the grace. */
  status: z.enum(["up", "unreachable", "lost"]),
  registeredAt: Timestamp.nullable(),
  /** When its last registration or heartbeat arrived (vm-service's clock). */
  lastSeenAt: Timestamp,
  unreachableSince: Timestamp.nullable(),
  stoppedAt: Timestamp.nullable(),
  /** What the control plane placed on it. */
  placedVms: z.int().nonnegative(),
  usedVcpus: z.int().nonnegative(),
  usedMemoryMb: z.int().nonnegative(),
  /** The VMs the host said it runs, in its last heartbeat (null: none heard yet). */
  runningVms: z.int().nonnegative().nullable(),
});
export type HostView = z.infer<typeof HostView>;

/** Every host, by id, on `<ns>.qry.vm.hosts` (superusers only: hosts are the operator's). */
export const ListHosts = query("hosts", z.object({ actor: Actor }), z.object({ items: z.array(HostView) }));
